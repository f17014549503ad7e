import type { EventEmitter } from 'node:events'
import type { ConnectionStats } from './types.js'

/** Counts the connections and HTTP/2 sessions of a server, so that tests can see how a client multiplexes. */
export class ConnectionCounter implements ConnectionStats {
  open = 0
  accepted = 0
  http2Sessions = 0

  watch (server: EventEmitter): void {
    server.on('connection', (socket: EventEmitter) => {
      this.open++
      this.accepted++
      socket.once('close', () => { this.open-- })
    })
    server.on('session', (session: EventEmitter) => {
      this.http2Sessions++
      session.once('close', () => { this.http2Sessions-- })
    })
  }

  snapshot (): ConnectionStats {
    return { open: this.open, accepted: this.accepted, http2Sessions: this.http2Sessions }
  }
}
