import { DEFAULT_HOLD_LIMIT_MS } from './limits.js'
import type { ProbeOptions } from './types.js'

/** Settings that are missing or wrong; `npm run probe` exits 2 with its message. */
export class ProbeSettingsError extends Error {
  readonly code = 'PROBE_SETTINGS'
  constructor (message: string) {
    super(message)
    this.name = 'ProbeSettingsError'
  }
}

export const USAGE = 'usage: UPSTREAM_URL=https://bot.jaicp.com/chatapi CHATAPI_TOKEN=… npm run probe [-- --json]\n' +
  'optional: PROBE_HOLD_LIMIT_MS (how long to wait for a held poll, default 30000), PROBE_CLIENT_ID'

/**
 * The probe's options from an environment, as the bridge names its own
 * settings, so that one .env serves both. The token is trimmed (whitespace
 * around it would reach the path) and never quoted in an error.
 */
export function probeOptionsFrom (env: Record<string, string | undefined>): ProbeOptions {
  const url = env.UPSTREAM_URL?.trim() ?? ''
  const token = env.CHATAPI_TOKEN?.trim() ?? ''
  const missing = [url === '' ? 'UPSTREAM_URL' : '', token === '' ? 'CHATAPI_TOKEN' : ''].filter((n) => n !== '')
  if (missing.length > 0) throw new ProbeSettingsError(`${missing.join(' and ')} must be set`)
  if (!/^https?:\/\/[^/]/i.test(url)) throw new ProbeSettingsError('UPSTREAM_URL must be an http:// or https:// URL, e.g. https://bot.jaicp.com/chatapi')
  const options: ProbeOptions = { url, token, holdLimitMs: holdLimitFrom(env.PROBE_HOLD_LIMIT_MS) }
  const clientId = env.PROBE_CLIENT_ID?.trim()
  if (clientId !== undefined && clientId !== '') options.clientId = clientId
  return options
}

function holdLimitFrom (value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_HOLD_LIMIT_MS
  const ms = Number(value)
  if (!Number.isInteger(ms) || ms < 100 || ms > 120_000) {
    throw new ProbeSettingsError(`PROBE_HOLD_LIMIT_MS must be a whole number of ms from 100 to 120000, got "${value}"`)
  }
  return ms
}
