/**
 * `npm run emulator`: the Chat API emulator on its own, configured by the
 * environment. The only file of the emulator that touches `process`.
 */
import { parseProfiles, startEmulator } from './index.js'

function numberFrom (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${value}"`)
  return n
}

const env = process.env
const profiles = parseProfiles(env.EMULATOR_PROFILE ?? '')
const emulator = await startEmulator({
  port: numberFrom(env.EMULATOR_PORT, 3001, 'EMULATOR_PORT'),
  host: env.EMULATOR_HOST ?? '127.0.0.1',
  tokens: (env.EMULATOR_TOKENS ?? 'demo-token').split(',').map((t) => t.trim()).filter((t) => t !== ''),
  holdMs: numberFrom(env.EMULATOR_HOLD_MS, 25_000, 'EMULATOR_HOLD_MS'),
  webhookUrl: env.EMULATOR_WEBHOOK_URL === '' ? undefined : env.EMULATOR_WEBHOOK_URL,
  profiles,
  http2: /^(1|true|yes|on)$/i.test(env.EMULATOR_HTTP2 ?? ''),
  http2MaxStreams: numberFrom(env.EMULATOR_HTTP2_MAX_STREAMS, 1000, 'EMULATOR_HTTP2_MAX_STREAMS'),
  logger: {
    level: env.EMULATOR_LOG_LEVEL ?? 'info',
    // The token is the channel's secret; request logs show the path without it.
    serializers: { req: (req: { method: string, url: string }) => ({ method: req.method, url: req.url.replace(/^\/(chatapi|operator)\/[^/?]+/, '/$1/***') }) }
  }
})

console.log(`Chat API emulator at ${emulator.url}${/^(1|true|yes|on)$/i.test(env.EMULATOR_HTTP2 ?? '') ? ' (HTTP/1.1 and h2c)' : ''}`)
console.log(`tokens: ${emulator.tokens.join(', ')}`)
if (profiles.length > 0) console.log(`profiles: ${profiles.join(', ')}`)
console.log(`try: curl '${emulator.url}/${emulator.tokens[0] ?? 'demo-token'}?clientId=me&query=buttons'`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    emulator.close().then(() => process.exit(0), (err) => {
      console.error(err)
      process.exit(1)
    })
  })
}
