import type { IncomingHttpHeaders, Server } from 'node:http'
import { LogController, type FastifyHttpOptions, type FastifyRequest } from 'fastify'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { PerMessageDeflateOptions } from 'ws'
import type { Config } from '../config.js'
import type { LineStream } from '../lib/pretty-log.js'
import { SUBPROTOCOL } from '../socket/protocol.js'

/**
 * Fields that never reach a log line: credentials, tickets and the channel
 * token; and the raw bytes Node keeps on a malformed request's error, which
 * may hold a webhook URL.
 */
export const REDACT = [
  'token', '*.token', 'ticket', '*.ticket', 'auth', '*.auth', 'resume', '*.resume',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]', 'err.rawPacket'
]

/**
 * A URL as log lines show it: the webhook's secret is its last segment, and
 * what follows the channel is replaced (all that follows `/v1/webhook/`
 * when there is no channel before it). Case and doubled slashes are
 * tolerated: a mistyped URL may still carry the secret.
 */
export function redactUrl (url: string): string {
  const m = /^(\/+v1\/+webhook\/+)([^/?#]*)(\/?)/i.exec(url)
  if (m === null) return url
  const [, prefix = '', channel = '', slash = ''] = m
  return slash === '' ? `${prefix}[redacted]` : `${prefix}${channel}/[redacted]`
}

/** What Fastify hands the `req` serializer: its own request at run time, typed as Node's. */
interface LoggedRequest {
  method?: string
  url?: string
  headers?: IncomingHttpHeaders
  ip?: string
  host?: string
  socket?: { remotePort?: number } | null
}

/** Fastify's own request serializer, with the URL redacted. */
function requestForLog (req: LoggedRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: req.url === undefined ? undefined : redactUrl(req.url),
    version: req.headers?.['accept-version'],
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort
  }
}

/** Fastify's request logging, but its "route not found" line, which writes the URL into the message, redacted too. */
class RedactingLogController extends LogController {
  override routeNotFound (request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return
    request.log.info(`Route ${request.raw.method ?? ''}:${redactUrl(request.raw.url ?? '')} not found`)
  }
}

/**
 * How often Node looks for requests past their deadline (30 s by default,
 * which would let a slow upload live that much longer): a quarter of the
 * deadline, a second at most.
 */
function checkingInterval (deadlineMs: number): number {
  return Math.min(1000, Math.ceil(deadlineMs / 4))
}

export interface LogOptions {
  /** Where the JSON log lines go instead of stdout: a test's recorder, or the pretty stream of LOG_FORMAT (src/lib/pretty-log.ts). */
  logStream?: LineStream
  /** A pino logger option; defaults to JSON logs at LOG_LEVEL. */
  logger?: boolean | object
}

/** The HTTP server and its logger: lines at LOG_LEVEL, secrets redacted before they reach the stream. */
export function serverOptions (config: Config, o: LogOptions): FastifyHttpOptions<Server> {
  const deadline = config.HTTP_TIMEOUT_MS
  return {
    logger: o.logger ?? {
      level: config.LOG_LEVEL,
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: { req: requestForLog },
      ...(o.logStream === undefined ? {} : { stream: o.logStream })
    },
    // A line per probe and per scrape is noise; at debug level every request is logged.
    logController: new RedactingLogController({ disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace' }),
    // Headers and body must arrive within HTTP_TIMEOUT_MS, or Node answers 408 and cuts the connection: an
    // unfinished upload cannot hold a socket and its buffers. The deadline ends once the request is read, and
    // an upgraded WebSocket leaves Node's HTTP bookkeeping, so a socket may still stay open for hours.
    requestTimeout: deadline,
    http: { headersTimeout: deadline, requestTimeout: deadline, connectionsCheckingInterval: checkingInterval(deadline) },
    // By the time the server closes, every socket had its 1012 (preClose). A connection still open then
    // (an upgrade caught halfway by the shutdown, say) would keep close() waiting forever: cut it.
    forceCloseConnections: true,
    // Where a request's address (req.ip, which the per-address limits count) comes from.
    trustProxy: trustProxy(config.TRUST_PROXY)
  }
}

/**
 * TRUST_PROXY as Fastify takes it: empty or "false" trusts no proxy (the TCP
 * peer is the client), "true" takes X-Forwarded-For from any peer, a number
 * trusts that many hops, and a list names the proxies trusted.
 */
export function trustProxy (setting: string): boolean | string[] | ((address: string, hop: number) => boolean) {
  const s = setting.trim()
  if (s === '' || /^false$/i.test(s)) return false
  if (/^true$/i.test(s)) return true
  if (/^\d+$/.test(s)) {
    const hops = Number(s)
    return (_address, hop) => hop < hops
  }
  return s.split(',').map((p) => p.trim()).filter((p) => p !== '')
}

/**
 * The WebSocket server: one subprotocol, frames up to MAX_FRAME_BYTES (after
 * inflating, so a compressed frame cannot grow past it), and
 * permessage-deflate only with WS_COMPRESSION. The figures behind each
 * choice are in bench/README.md (the compression scenario).
 */
export function websocketOptions (config: Config): WebsocketPluginOptions {
  return {
    options: {
      maxPayload: config.MAX_FRAME_BYTES,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
      perMessageDeflate: config.WS_COMPRESSION ? deflateOptions(config) : false
    }
  }
}

/**
 * permessage-deflate as ws takes it. Off by default because of memory: ws
 * keeps a socket's zlib stream from its first compressed frame until it
 * closes (no context takeover only resets it between frames), about 100 KB
 * each outside V8's heap with these options, where a whole idle socket
 * costs about 16 KB without compression.
 */
function deflateOptions (config: Config): PerMessageDeflateOptions {
  return {
    // ws honours the threshold only without server context takeover; with it, every frame is compressed.
    threshold: config.WS_COMPRESSION_THRESHOLD,
    // Left out rather than false when the context is kept: false would make ws refuse (400) a client
    // that asks for no server context takeover, where leaving it out grants the client's wish.
    ...(config.WS_COMPRESSION_CONTEXT ? {} : { serverNoContextTakeover: true }),
    // A client's frames are small; with this, ws clients leave those under their threshold uncompressed,
    // and no client's window needs keeping from one frame to the next.
    clientNoContextTakeover: true,
    // A 4 KB window instead of 32 KB: about 100 KB of zlib memory per socket instead of 220, and the same
    // bytes on the wire for frames of a few KB. ws refuses (400) a client that asks for a smaller one;
    // browsers never do. The client's window is left to the client: asking for one would refuse browsers.
    serverMaxWindowBits: 12,
    // For frames of 1-2 KB, levels 1 to 6 differ by under 2% in bytes and not measurably in CPU, which
    // goes to ws's hand-off to the thread pool; memLevel 4 saves about 10 KB per socket over zlib's 8.
    zlibDeflateOptions: { level: 1, memLevel: 4 }
    // concurrencyLimit stays ws's (10 zlib jobs at once, process-wide): frames waiting for it count in
    // bufferedAmount, so the outbound queue's bound still holds while they wait.
  }
}
