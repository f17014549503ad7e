import { hkdfSync, randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import type { Config, Channel } from './config.js'
import { JwtAuth, TicketAuth, type Authenticator } from './auth.js'
import { CursorCodec } from './cursor.js'
import { LocalHub } from './local-hub.js'
import { Requests } from './requests.js'
import { ChatApi } from './upstream/client.js'
import { SUBPROTOCOL } from './protocol.js'
import { wsRoutes } from './routes/ws.js'
import { healthRoutes } from './routes/health.js'
import { Sessions } from './sessions.js'
import { clientRoutes } from './routes/client.js'

export interface AppOptions {
  channels: Channel[]
  /** Serve the demo chat page at `/`. */
  demoPage?: boolean
  /** A pino logger option; defaults to JSON logs at LOG_LEVEL. */
  logger?: boolean | object
}

/** Fields that never reach a log line: credentials, tickets and the channel token. */
export const REDACT = [
  'token', '*.token', 'ticket', '*.ticket', 'auth', '*.auth', 'resume', '*.resume',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]'
]

declare module 'fastify' {
  interface FastifyInstance {
    bridge: { sessions: Sessions, hub: LocalHub, channels: Channel[], ready: boolean }
  }
}

function keyFrom (secret: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32))
}

/** Builds the bridge without listening: tests build it the same way the server does. */
export async function buildApp (config: Config, opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: config.LOG_LEVEL, redact: { paths: REDACT, censor: '[redacted]' } },
    disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace',
    // A browser may keep a WebSocket open for hours; the server must not time it out.
    requestTimeout: 0
  })
  if (opts.channels.length === 0) throw new Error('at least one channel is needed')

  let secret: Buffer
  if (config.TICKET_SECRET !== undefined) {
    secret = Buffer.from(config.TICKET_SECRET)
  } else {
    secret = randomBytes(32)
    app.log.warn('TICKET_SECRET is not set: a random secret is used, so tickets and cursors will not survive a restart')
  }
  const auth: Authenticator = config.AUTH_MODE === 'jwt'
    ? new JwtAuth({ secret: config.JWT_SECRET, publicKey: config.JWT_PUBLIC_KEY, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE })
    : new TicketAuth(keyFrom(secret, 'chatapi-bridge ticket v1'), config.TICKET_TTL_S)
  const cursors = new CursorCodec(keyFrom(secret, 'chatapi-bridge cursor v1'))

  const apis = new Map<string, ChatApi>()
  for (const c of opts.channels) {
    apis.set(c.name, new ChatApi(c, { requestTimeoutMs: config.REQUEST_TIMEOUT_MS, pollTimeoutMs: config.POLL_TIMEOUT_MS }))
  }
  const hubLog = app.log.child({ component: 'hub' })
  const hub = new LocalHub({
    apis,
    cursors,
    log: hubLog,
    lingerMs: config.POLL_LINGER_MS,
    bufferSize: config.EVENT_BUFFER,
    backoffBaseMs: config.BACKOFF_BASE_MS,
    backoffMaxMs: config.BACKOFF_MAX_MS,
    resumeWaitMs: Math.min(config.REQUEST_TIMEOUT_MS, 5000)
  })
  const sessions = new Sessions(config.HEARTBEAT_MS)
  const requests = new Requests({
    apis,
    resultCacheMs: config.RESULT_CACHE_MS,
    onChannelRejected: (channel) => { sessions.rejectChannel(channel) }
  })
  app.decorate('bridge', { sessions, hub, channels: opts.channels, ready: false })

  // Runs before @fastify/websocket's own preClose: sockets get 1012, not a bare close.
  app.addHook('preClose', async () => {
    app.bridge.ready = false
    requests.shutdown()
    await sessions.closeAll(Math.min(config.SHUTDOWN_TIMEOUT_MS, 2000))
    await hub.close()
  })
  app.addHook('onClose', async () => {
    await Promise.all([...apis.values()].map(async (a) => { await a.close() }))
  })
  app.addHook('onReady', async () => { app.bridge.ready = true })

  await app.register(websocket, {
    options: {
      maxPayload: config.MAX_FRAME_BYTES,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
      // Event frames are small JSON; compression costs more CPU and memory per socket than it saves.
      perMessageDeflate: false
    }
  })
  await app.register(healthRoutes)
  await app.register(clientRoutes, { demoPage: opts.demoPage ?? false })
  await app.register(wsRoutes, { config, auth, hub, requests, cursors, sessions })
  return app
}
