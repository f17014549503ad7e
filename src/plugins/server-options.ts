import { LogController, type FastifyServerOptions } from 'fastify'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { Config } from '../config.js'
import { SUBPROTOCOL } from '../socket/protocol.js'

/** Fields that never reach a log line: credentials, tickets and the channel token. */
export const REDACT = [
  'token', '*.token', 'ticket', '*.ticket', 'auth', '*.auth', 'resume', '*.resume',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]'
]

export interface LogOptions {
  /** Where the JSON log lines go instead of stdout (tests read them). */
  logStream?: { write: (line: string) => void }
  /** A pino logger option; defaults to JSON logs at LOG_LEVEL. */
  logger?: boolean | object
}

/** The HTTP server and its logger: JSON lines at LOG_LEVEL, secrets redacted. */
export function serverOptions (config: Config, o: LogOptions): FastifyServerOptions {
  return {
    logger: o.logger ?? {
      level: config.LOG_LEVEL,
      redact: { paths: REDACT, censor: '[redacted]' },
      ...(o.logStream === undefined ? {} : { stream: o.logStream })
    },
    // A line per probe and per scrape is noise; at debug level every request is logged.
    logController: new LogController({ disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace' }),
    // A browser may keep a WebSocket open for hours; the server must not time it out.
    requestTimeout: 0,
    // By the time the server closes, every socket had its 1012 (preClose). A connection still open then
    // (an upgrade caught halfway by the shutdown, say) would keep close() waiting forever: cut it.
    forceCloseConnections: true
  }
}

/** The WebSocket server: one subprotocol, frames up to MAX_FRAME_BYTES. */
export function websocketOptions (config: Config): WebsocketPluginOptions {
  return {
    options: {
      maxPayload: config.MAX_FRAME_BYTES,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
      // Event frames are small JSON; compression costs more CPU and memory per socket than it saves.
      perMessageDeflate: false
    }
  }
}
