import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * The sockets of WebSocket upgrades in progress. An upgrade's socket leaves
 * the HTTP server's care: one refused during shutdown, and left half open by
 * its client, would keep close() waiting forever. So they are tracked, new
 * ones are refused once shutdown begins, and what is left is cut.
 */
export class Upgrades {
  private readonly sockets = new Set<Socket>()
  private closing = false

  constructor (server: Server) {
    server.prependListener('upgrade', (_req: unknown, socket: Socket) => {
      if (this.closing) {
        socket.destroy()
        return
      }
      this.sockets.add(socket)
      socket.once('close', () => { this.sockets.delete(socket) })
    })
  }

  /** From now on an upgrade's socket is destroyed as it arrives. */
  refuse (): void { this.closing = true }

  /** Destroys the sockets of the upgrades still open. */
  cut (): void {
    for (const socket of this.sockets) socket.destroy()
  }
}
