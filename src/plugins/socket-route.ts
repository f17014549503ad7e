import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import type { Authenticator } from '../socket/auth.js'
import type { CursorCodec } from '../feed/cursor.js'
import type { Hub } from '../feed/hub.js'
import type { Requests } from '../socket/requests.js'
import type { Sessions } from '../socket/sessions.js'
import { CloseCode, closeReason } from '../socket/errors.js'
import { Session, type SessionDeps } from '../socket/session.js'
import type { StreamRouter } from '../socket/stream-router.js'
import { eventStreamRoutes, type Admission } from './event-stream-route.js'
import type { Metrics } from './metrics.js'

export interface WsRouteOptions {
  config: Config
  auth: Authenticator
  hub: Hub
  requests: Requests
  cursors: CursorCodec
  sessions: Sessions
  metrics: Metrics | undefined
  /** Where the HTTP transport's POSTs go when another instance holds their stream. */
  router: StreamRouter
}

/** The channel a socket asks for with ?channel=, or the default one. */
function channelOf (req: FastifyRequest, names: string[], fallback: string | undefined): string | undefined {
  const asked = (req.query as Record<string, unknown>).channel
  if (typeof asked === 'string' && asked !== '') return names.includes(asked) ? asked : undefined
  if (fallback !== undefined) return fallback
  return names.length === 1 ? names[0] : names.includes('default') ? 'default' : undefined
}

/**
 * The socket endpoints: /v1/ws, and the HTTP transport's /v1/sse for
 * clients that cannot open a WebSocket. One Session per accepted socket or
 * stream, with the same checks; refused with 503 while the bridge is not
 * ready.
 */
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
  // Browsers always send Origin; other clients (apps, servers) may not, and are not what the check protects against.
  const originAllowed = (origin: string | undefined): boolean => allowed.size === 0 || origin === undefined || allowed.has(origin)
  const admit: Admission = (req) => {
    const origin = req.headers.origin
    if (!originAllowed(origin)) return { refused: CloseCode.FORBIDDEN_ORIGIN, why: { origin } }
    const channel = channelOf(req, names, o.config.DEFAULT_CHANNEL)
    if (channel === undefined) return { refused: CloseCode.UNKNOWN_CHANNEL, why: { channel: (req.query as Record<string, unknown>).channel } }
    return { channel }
  }

  app.get('/v1/ws', {
    websocket: true,
    preValidation: async (req, reply) => {
      if (!app.bridge.ready) {
        return await reply.code(503).send({ error: 'SHUTTING_DOWN', message: 'the bridge is not taking sockets now' })
      }
    }
  }, (socket, req) => {
    const admitted = admit(req)
    // Refused after the upgrade, with a close code: a browser cannot see the status of a refused upgrade.
    if ('refused' in admitted) {
      req.log.info(admitted.why, closeReason[admitted.refused])
      socket.close(admitted.refused, closeReason[admitted.refused])
      return
    }
    const channel = admitted.channel
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
  await app.register(eventStreamRoutes, { deps, admit, originAllowed, router: o.router, maxFrameBytes: o.config.MAX_FRAME_BYTES })
}
