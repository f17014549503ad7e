/**
 * The emulator's connections: one cleartext port for HTTP/1.1 and h2c, as an
 * ingress with HTTP/2 turned on serves, and the count of what is open.
 */
import type { EventEmitter } from 'node:events'
import http2 from 'node:http2'
import type { Socket } from 'node:net'

/** Connections the emulator has accepted, for tests and benchmarks that count them. */
export interface ConnectionStats {
  /** TCP connections open now. */
  open: number
  /** TCP connections accepted since the start. */
  accepted: number
  /** HTTP/2 sessions open now (each on one of the open connections). */
  http2Sessions: number
}

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

/** The HTTP/2 client preface: a cleartext connection that starts with it speaks HTTP/2 by prior knowledge. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/** How long close() lets an HTTP/2 session finish its streams before it is cut. */
const SESSION_CLOSE_GRACE_MS = 1000

export type RequestHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void

export interface H2cServer extends http2.Http2Server {
  /** Called by Fastify's close() (forceCloseConnections): ends every session and HTTP/1.1 socket. */
  closeHttp2Sessions: () => void
}

/**
 * A cleartext server that speaks HTTP/2 (h2c, prior knowledge) and HTTP/1.1
 * on the same port, as an ingress with HTTP/2 turned on does: a connection
 * that opens with the HTTP/2 preface becomes an HTTP/2 session, any other is
 * served as HTTP/1.1. Node's HTTP/2 server falls back to HTTP/1.1 only for
 * TLS connections whose ALPN chose it; a plain connection is marked the same
 * way (`alpnProtocol === false`) after its first bytes were looked at.
 */
export function createH2cServer (handler: RequestHandler, maxConcurrentStreams: number): H2cServer {
  // allowHTTP1 is typed for the TLS server only; the plain one honours it for connections marked as below.
  const options = { allowHTTP1: true, settings: { maxConcurrentStreams } } as http2.ServerOptions
  const server = http2.createServer(options, handler) as H2cServer
  const [dispatch] = server.listeners('connection') as Array<(socket: Socket) => void>
  if (dispatch === undefined) throw new Error('node:http2 server has no connection listener')
  server.removeAllListeners('connection')
  const h2Sockets = new WeakSet<Socket>()
  server.on('connection', (socket: Socket) => {
    sniff(socket, (isH2) => {
      if (isH2) h2Sockets.add(socket)
      route(server, dispatch, socket, isH2)
    })
  })

  const sockets = new Set<Socket>()
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  server.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  server.closeHttp2Sessions = () => {
    for (const session of sessions) {
      session.close()
      setTimeout(() => { if (!session.destroyed) session.destroy() }, SESSION_CLOSE_GRACE_MS).unref()
    }
    for (const socket of sockets) {
      // HTTP/1.1 keep-alive sockets and silent ones; a session's socket goes with its session.
      if (!h2Sockets.has(socket)) socket.destroy()
    }
  }
  return server
}

function route (server: http2.Http2Server, dispatch: (socket: Socket) => void, socket: Socket, isH2: boolean): void {
  if (!isH2) (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol = false
  dispatch.call(server, socket)
  // The HTTP/1.1 parser reads from a flowing socket; an HTTP/2 session reads the bytes put back itself.
  if (!isH2) socket.resume()
}

/** Reads until the first bytes tell the protocol, then puts them back and pauses the socket. */
function sniff (socket: Socket, decide: (isH2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0)
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
    const n = Math.min(seen.length, PREFACE.length)
    const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n))
    if (isH2 && n < PREFACE.length) return
    socket.removeListener('data', onData)
    socket.pause()
    socket.unshift(seen)
    decide(isH2)
  }
  socket.on('data', onData)
}
