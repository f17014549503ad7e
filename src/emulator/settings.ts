import type { EmulatorOptions } from './types.js'

export interface Settings {
  port: number
  host: string
  tokens: string[]
  holdMs: number
  webhookUrl: string | undefined
  webhookRetryDelayMs: number
  asyncDelayMs: number
  agentDelayMs: number
  clockOffsetMs: number
  http2: boolean
  http2MaxStreams: number
  logger: boolean | object
}

/** The options with every default filled in. */
export function settingsOf (options: EmulatorOptions = {}): Settings {
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
    http2: options.http2 ?? false,
    http2MaxStreams: options.http2MaxStreams ?? 1000,
    logger: options.logger ?? false
  }
}
