/**
 * The emulator as its users see it: the options it takes, the interface it
 * answers, and the running one, a Fastify server around the core. The
 * bridge, its tests and the benchmarks program against these types, so they
 * change only on purpose.
 */
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { createH2cServer, type ConnectionStats, type RequestHandler } from './connections.js'
import { EmulatorCore, type Settings } from './core.js'
import { installErrorReplies } from './emulator-error.js'
import type { UpstreamEvent } from './event-log.js'
import type { FaultController } from './faults.js'
import { flagsOf, isProfileName, type ProfileName } from './profiles.js'
import { RequestRecorder, type RequestRecord } from './request-log.js'
import { isRouteName, routeNameOf } from './route-table.js'
import { addRoutes, type EmulatorApp } from './routes.js'

export interface EmulatorOptions {
  /** Port to listen on; 0 picks a free one. Default 0. */
  port?: number
  /** Default '127.0.0.1'. */
  host?: string
  /** Channel tokens accepted; any other token is answered with 401 (404 with 'not-found-token'). Default ['demo-token']. */
  tokens?: string[]
  /** How long /events holds a request that has nothing to return. Default 25000. */
  holdMs?: number
  /** Where async answers, campaigns, agent replies and bot timeouts are POSTed. */
  webhookUrl?: string
  /** Base delay between the three webhook retries; it doubles each time. Default 500. */
  webhookRetryDelayMs?: number
  /** Delay before an async answer is delivered. Default 50. */
  asyncDelayMs?: number
  /** Delay of the simulated agent's reply after a hand-over. Default 1500. */
  agentDelayMs?: number
  /** Added to every upstream timestamp, to play an upstream whose clock differs from ours. Default 0. */
  clockOffsetMs?: number
  /**
   * Behaviours of a live Chat API that public evidence allows, in place of
   * the emulator's defaults; they combine. See PROFILES. Default none.
   */
  profiles?: ProfileName[]
  /** With the 'late-stamps' profile: how long after its request a turn's botResponse is stored. Default 1000. */
  lateStampMs?: number
  /**
   * Speak cleartext HTTP/2 (h2c, prior knowledge) as well as HTTP/1.1 on the
   * same port, as an ingress with HTTP/2 turned on does. Default false.
   */
  http2?: boolean
  /** SETTINGS_MAX_CONCURRENT_STREAMS of each HTTP/2 session. Default 1000. */
  http2MaxStreams?: number
  /** Fastify's logger option. Default false. */
  logger?: boolean | object
}

export interface Emulator {
  /** Chat API base, e.g. 'http://127.0.0.1:43211/chatapi'; requests go to `${url}/${token}…`. */
  url: string
  /** e.g. 'http://127.0.0.1:43211' */
  origin: string
  tokens: string[]
  /** Answers held polls, drops hung requests and pending deliveries, then stops listening. */
  close(): Promise<void>
  setWebhookUrl(url: string | undefined): void
  /** Appends an agentResponse event and calls the webhook. */
  agentReply(token: string, clientId: string, text: string): UpstreamEvent
  /** Appends an event of any type; `body` is merged into `event`. */
  publish(token: string, clientId: string, type: string, body?: Record<string, unknown>): UpstreamEvent
  /** Sends a text campaign to the webhook only. */
  campaign(token: string, clientIds: string[], text: string): void
  /** Held /events requests right now for that key; cid undefined counts every cid. */
  activePolls(token: string, clientId: string, cid?: string): number
  /** The most ever held at once for that key; cid undefined counts every cid. */
  maxActivePolls(token: string, clientId: string, cid?: string): number
  /** Connections accepted and open; also at GET /operator/connections. */
  readonly connections: ConnectionStats
  /** Every request received, newest last, bounded to the last 10,000. */
  readonly requests: RequestRecord[]
  on(event: 'request', fn: (record: RequestRecord) => void): this
  faults: FaultController
}

/** Starts a Chat API emulator listening on `options.port` (a free port by default). */
export async function startEmulator (options: EmulatorOptions = {}): Promise<Emulator> {
  const settings = settingsOf(options)
  const emulator = new RunningEmulator(settings)
  await emulator.listen(settings.port, settings.host)
  return emulator
}

/** The options with every default filled in. */
function settingsOf (options: EmulatorOptions): Settings {
  const profiles = [...new Set(options.profiles ?? [])]
  // The type keeps TypeScript callers right; this keeps a JavaScript caller from a silent no-op.
  for (const name of profiles) if (!isProfileName(name)) throw new TypeError(`unknown emulator profile: ${String(name)}`)
  return {
    port: options.port ?? 0,
    host: options.host ?? '127.0.0.1',
    tokens: options.tokens ?? ['demo-token'],
    holdMs: options.holdMs ?? 25_000,
    webhookUrl: options.webhookUrl,
    webhookRetryDelayMs: options.webhookRetryDelayMs ?? 500,
    asyncDelayMs: options.asyncDelayMs ?? 50,
    agentDelayMs: options.agentDelayMs ?? 1500,
    clockOffsetMs: options.clockOffsetMs ?? 0,
    lateStampMs: options.lateStampMs ?? 1000,
    flags: flagsOf(profiles),
    http2: options.http2 ?? false,
    http2MaxStreams: options.http2MaxStreams ?? 1000,
    logger: options.logger ?? false
  }
}

class RunningEmulator extends EventEmitter implements Emulator {
  /** Both set by listen(). */
  url = ''
  origin = ''
  readonly tokens: string[]
  readonly faults: FaultController
  private readonly core: EmulatorCore
  private readonly app: EmulatorApp
  private closed: Promise<void> | undefined

  constructor (settings: Settings) {
    super()
    this.core = new EmulatorCore(
      settings,
      { warn: (details, message) => this.app.log.warn(details, message) },
      (record) => this.emit('request', record)
    )
    this.app = buildApp(this.core, settings)
    this.core.connections.watch(this.app.server)
    this.tokens = [...this.core.tokens]
    this.faults = this.core.faults
  }

  async listen (port: number, host: string): Promise<void> {
    try {
      await this.app.listen({ port, host })
    } catch (err) {
      await this.close()
      throw err
    }
    this.origin = originOf(this.app.server.address() as AddressInfo)
    this.url = `${this.origin}/chatapi`
  }

  get connections (): ConnectionStats {
    return this.core.connections.snapshot()
  }

  get requests (): RequestRecord[] {
    return this.core.requests.records
  }

  close (): Promise<void> {
    this.closed ??= this.core.close().then(() => this.app.close())
    return this.closed
  }

  setWebhookUrl (url: string | undefined): void {
    this.core.webhook.url = url
  }

  agentReply (token: string, clientId: string, text: string): UpstreamEvent {
    this.core.checkToken(token)
    return this.core.outreach.agentReply(token, clientId, text)
  }

  publish (token: string, clientId: string, type: string, body?: Record<string, unknown>): UpstreamEvent {
    this.core.checkToken(token)
    return this.core.publish(token, clientId, type, body)
  }

  campaign (token: string, clientIds: string[], text: string): void {
    this.core.checkToken(token)
    this.core.outreach.campaign(token, clientIds, text)
  }

  activePolls (token: string, clientId: string, cid?: string): number {
    return this.core.polls.active(token, clientId, cid)
  }

  maxActivePolls (token: string, clientId: string, cid?: string): number {
    return this.core.polls.peak(token, clientId, cid)
  }
}

/** The emulator's HTTP face, without listen(), so that it is built the same way everywhere. */
function buildApp (core: EmulatorCore, settings: Settings): EmulatorApp {
  // Fastify types its instance by server kind; the HTTP/2 compat request and
  // response have the HTTP/1.1 API the routes use, so one type serves both.
  const h2 = settings.http2
    ? { http2: true, serverFactory: (handler: RequestHandler) => createH2cServer(handler, settings.http2MaxStreams) }
    : {}
  const app = Fastify({
    ...(h2 as object),
    logger: settings.logger,
    logController: new DebugRequestLines(),
    // close() must not wait for keep-alive sockets of pollers that were just answered.
    forceCloseConnections: true,
    exposeHeadRoutes: false,
    // Query values stay strings and bodies are not bent into shape: a wrong type is a 400.
    ajv: { customOptions: { coerceTypes: false } }
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.removeContentTypeParser('text/plain')
  installErrorReplies(app)

  // Record, then faults, then the token: a fault hits even a request with a bad
  // token, and the record shows every request as it came, faulted or not.
  const recorder = new RequestRecorder(core.requests)
  app.addHook('onError', async (request) => recorder.record(request))
  app.addHook('preValidation', async (request, reply) => {
    recorder.record(request)
    const route = routeNameOf(request.method, request.routeOptions.url)
    if (isRouteName(route)) await core.injector.apply(route, request, reply)
    const { token } = request.params as { token?: string }
    if (!reply.sent && token !== undefined) core.checkToken(token)
  })

  // A live server's Date header comes from the clock its timestamps come from: so does ours.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('date', new Date(core.clock.now()).toUTCString())
  })

  addRoutes(app, core)
  return app
}

/**
 * Fastify's two lines per request at debug rather than info: every poller
 * holds a long poll after another, and their lines would bury the faults
 * and errors. A request that fails is still logged at error.
 */
class DebugRequestLines extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // Fastify passes an error only when the response stream itself fails, which no test can cause through a socket.
    /* c8 ignore next */
    if (error !== null && error !== undefined) return super.requestCompleted(error, request, reply)
    reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/** An origin a client can connect to, even when listening on every interface. */
function originOf (address: AddressInfo): string {
  if (address.family === 'IPv6') {
    const host = address.address === '::' ? '::1' : address.address
    return `http://[${host}]:${address.port}`
  }
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address
  return `http://${host}:${address.port}`
}
