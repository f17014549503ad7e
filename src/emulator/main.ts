/**
 * `npm run emulator`: the Chat API emulator on its own, configured by the
 * environment. The only file of the emulator that touches `process`.
 */
import { loadConfig, type Config } from '../config.js'
import { logStream } from '../lib/pretty-log.js'
import { parseProfiles, startEmulator } from './index.js'

function numberFrom (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${value}"`)
  return n
}

function profilesFrom (value: string | undefined): ReturnType<typeof parseProfiles> {
  try {
    return parseProfiles(value ?? '')
  } catch (err) {
    throw new Error(`EMULATOR_PROFILE: ${(err as Error).message}`)
  }
}

/** LOG_FORMAT read as the bridge reads it (the setting is the bridge's, and so is its error); the other settings are not read. */
function logFormatFrom (value: string | undefined): Config['LOG_FORMAT'] {
  return loadConfig({ LOG_FORMAT: value }).LOG_FORMAT
}

/** Stops the start with one line a person can act on, no stack. */
function fail (message: string, code: number): never {
  process.stderr.write(`Chat API emulator: cannot start: ${message}\n`)
  process.exit(code)
}

/** What a failed listen means, which setting to change, and the exit code (78: a wrong setting). */
function listenProblem (err: NodeJS.ErrnoException, port: number, host: string): { message: string, code: number } | undefined {
  if (err.code === 'EADDRINUSE') {
    return { message: `port ${port} (EMULATOR_PORT) is already in use: a bridge started with \`npm start\` runs its own emulator there (it needs no other), or another emulator is running; stop it, or set EMULATOR_PORT to a free port`, code: 1 }
  }
  if (err.code === 'ERR_SOCKET_BAD_PORT') return { message: `EMULATOR_PORT=${port} is not a port: expected 0 to 65535`, code: 78 }
  if (err.code === 'EACCES') return { message: `port ${port} (EMULATOR_PORT) needs privileges this process does not have: set EMULATOR_PORT to a port above 1023`, code: 1 }
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code?.startsWith('EAI_') === true) {
    return { message: `EMULATOR_HOST=${JSON.stringify(host)} is not an address of this machine (${err.code}); use 127.0.0.1, or 0.0.0.0 for every interface`, code: 78 }
  }
  return undefined
}

const env = process.env
let settings
let stream
try {
  settings = {
    port: numberFrom(env.EMULATOR_PORT, 3001, 'EMULATOR_PORT'),
    host: env.EMULATOR_HOST ?? '127.0.0.1',
    holdMs: numberFrom(env.EMULATOR_HOLD_MS, 25_000, 'EMULATOR_HOLD_MS'),
    http2MaxStreams: numberFrom(env.EMULATOR_HTTP2_MAX_STREAMS, 1000, 'EMULATOR_HTTP2_MAX_STREAMS'),
    profiles: profilesFrom(env.EMULATOR_PROFILE)
  }
  stream = logStream(logFormatFrom(env.LOG_FORMAT), process.stdout, env)
} catch (err) {
  fail((err as Error).message, 78)
}
const { profiles } = settings
let emulator
try {
  emulator = await startEmulator({
    ...settings,
    tokens: (env.EMULATOR_TOKENS ?? 'demo-token').split(',').map((t) => t.trim()).filter((t) => t !== ''),
    webhookUrl: env.EMULATOR_WEBHOOK_URL === '' ? undefined : env.EMULATOR_WEBHOOK_URL,
    http2: /^(1|true|yes|on)$/i.test(env.EMULATOR_HTTP2 ?? ''),
    logger: {
      level: env.EMULATOR_LOG_LEVEL ?? 'info',
      // The token is the channel's secret; request logs show the path without it.
      serializers: { req: (req: { method: string, url: string }) => ({ method: req.method, url: req.url.replace(/^\/(chatapi|operator)\/[^/?]+/, '/$1/***') }) },
      ...(stream === undefined ? {} : { stream })
    }
  })
} catch (err) {
  const problem = listenProblem(err as NodeJS.ErrnoException, settings.port, settings.host)
  if (problem === undefined) throw err
  fail(problem.message, problem.code)
}

console.log(`Chat API emulator at ${emulator.url}${/^(1|true|yes|on)$/i.test(env.EMULATOR_HTTP2 ?? '') ? ' (HTTP/1.1 and h2c)' : ''}`)
console.log(`tokens: ${emulator.tokens.join(', ')}`)
if (profiles.length > 0) console.log(`profiles: ${profiles.join(', ')}`)
console.log(`try: curl '${emulator.url}/${emulator.tokens[0] ?? 'demo-token'}?clientId=me&query=buttons'`)
console.log(`a bridge in front of it: UPSTREAM_URL=${emulator.url}/chatapi CHATAPI_TOKEN=${emulator.tokens[0] ?? 'demo-token'} npm start`)
if (env.EMULATOR_WEBHOOK_URL === undefined || env.EMULATOR_WEBHOOK_URL === '') {
  // Without it, answers to sendAsync and agent replies stay in the emulator: say so where it is noticed, at the start.
  console.log('no EMULATOR_WEBHOOK_URL: webhook deliveries (sendAsync answers, agent replies) go nowhere. To reach a bridge, set it to\n' +
    '  http://127.0.0.1:3000/v1/webhook/default/<secret> here and WEBHOOK_SECRET=<secret> on the bridge (16+ letters, digits, _ or -)')
} else {
  console.log(`webhook deliveries go to ${env.EMULATOR_WEBHOOK_URL.replace(/\/[^/]*$/, '/***')}`)
}

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
