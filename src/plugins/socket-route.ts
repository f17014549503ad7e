import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import type { Authenticator } from '../socket/auth.js'
import type { CursorCodec } from '../feed/cursor.js'
import type { Hub } from '../feed/hub.js'
import type { Requests } from '../socket/requests.js'
import type { Sessions } from '../socket/sessions.js'
import { CloseCode, closeReason } from '../socket/errors.js'
import { Session, type SessionDeps } from '../socket/session.js'
import type { Metrics } from './metrics.js'

export interface WsRouteOptions {
  config: Config
  auth: Authenticator
  hub: Hub
  requests: Requests
  cursors: CursorCodec
  sessions: Sessions
  metrics: Metrics | undefined
}

/** The channel a socket asks for with ?channel=, or the default one. */
function channelOf (req: FastifyRequest, names: string[], fallback: string | undefined): string | undefined {
  const asked = (req.query as Record<string, unknown>).channel
  if (typeof asked === 'string' && asked !== '') return names.includes(asked) ? asked : undefined
  if (fallback !== undefined) return fallback
  return names.length === 1 ? names[0] : names.includes('default') ? 'default' : undefined
}

/** The socket endpoint, /v1/ws: one Session per accepted socket, refused with 503 while the bridge is not ready. */
export async function wsRoutes (app: FastifyInstance, o: WsRouteOptions): Promise<void> {
  const names = app.bridge.channels.map((c) => c.name)
  // One object for every session: per idle socket, each byte counts.
  const deps: SessionDeps = {
    auth: o.auth,
    hub: o.hub,
    requests: o.requests,
    cursors: o.cursors,
    log: app.log,
    helloTimeoutMs: o.config.HELLO_TIMEOUT_MS,
    heartbeatMs: o.config.HEARTBEAT_MS,
    outboundQueueBytes: o.config.OUTBOUND_QUEUE_BYTES,
    slowClientMs: o.config.SLOW_CLIENT_MS,
    rateLimitPerS: o.config.RATE_LIMIT_PER_S,
    rateLimitBurst: o.config.RATE_LIMIT_BURST,
    maxSocketsPerClient: o.config.MAX_SOCKETS_PER_CLIENT,
    registry: o.sessions,
    metrics: o.metrics
  }
  const allowed = new Set(o.config.ALLOWED_ORIGINS.split(',').map((s) => s.trim()).filter((s) => s !== ''))

  app.get('/v1/ws', {
    websocket: true,
    preValidation: async (req, reply) => {
      if (!app.bridge.ready) {
        return await reply.code(503).send({ error: 'SHUTTING_DOWN', message: 'the bridge is not taking sockets now' })
      }
    }
  }, (socket, req) => {
    const origin = req.headers.origin
    // Browsers always send Origin; other clients (apps, servers) may not, and are not what the check protects against.
    if (allowed.size > 0 && origin !== undefined && !allowed.has(origin)) {
      req.log.info({ origin }, 'origin not allowed')
      socket.close(CloseCode.FORBIDDEN_ORIGIN, closeReason[CloseCode.FORBIDDEN_ORIGIN])
      return
    }
    const channel = channelOf(req, names, o.config.DEFAULT_CHANNEL)
    // Refused after the upgrade, with a close code: a browser cannot see the status of a refused upgrade.
    if (channel === undefined) {
      req.log.info({ channel: (req.query as Record<string, unknown>).channel }, 'unknown channel')
      socket.close(CloseCode.UNKNOWN_CHANNEL, closeReason[CloseCode.UNKNOWN_CHANNEL])
      return
    }
    // Two references would keep the upgrade request, its reply and their
    // hooks alive as long as the socket (about 2 KB per idle socket):
    // @fastify/websocket's own 'error' listener (the session logs socket
    // errors itself), and the TCP socket's link to the response made for the
    // upgrade, which Node's own upgrade path clears the same way.
    socket.removeAllListeners('error')
    const tcp = req.raw.socket as { _httpMessage?: unknown } | null
    if (tcp !== null) tcp._httpMessage = null
    // The session registers itself and lives as long as its socket.
    new Session(socket, channel, req.ip, deps)
  })
}
