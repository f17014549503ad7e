#!/usr/bin/env node
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { buildApp } from './app.js'
import { ConfigError, channelWarnings, loadConfig, parseChannels, type Channel, type Config } from './config.js'
import { parseProfiles, startEmulator, type Emulator } from './emulator/index.js'
import { logStream } from './lib/pretty-log.js'

/** A start that cannot go on for a reason a person can fix: one line on stderr, no stack. */
class StartError extends Error {
  constructor (message: string, readonly exitCode: number) {
    super(message)
    this.name = 'StartError'
  }
}

/** Exit code of a wrong setting (EX_CONFIG), as for a ConfigError. */
const EX_CONFIG = 78

/** Where a development bridge keeps its ticket secret, relative to the working directory; .gitignore has it. */
const DEV_SECRET_FILE = join('.chatapi-bridge', 'dev-secret')

/** The process entry: the only file that touches `process`. */
async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chatapi-bridge: configuration error\n${err.message}\n`)
      process.exit(EX_CONFIG)
    }
    throw err
  }

  let channels: Channel[] = parseChannels(config)
  const builtIn = channels.length === 0
  // Every address and port is tried before anything starts, so a taken one stops the start with nothing half done.
  await checkListeners(config, builtIn)

  // In development the secret is kept on disk, so a restart does not turn every visitor into a new one.
  let devSecret: { file: string, secret: string } | { file: string, error: string } | undefined
  if (builtIn && config.TICKET_SECRET === undefined && process.env.NODE_ENV !== 'production') {
    devSecret = keptSecret(resolve(process.cwd(), DEV_SECRET_FILE))
    if ('secret' in devSecret) config = { ...config, TICKET_SECRET: devSecret.secret }
  }

  let emulator: Emulator | undefined
  if (builtIn) {
    // The emulator delivers async answers, campaigns and agent replies to our webhook, as the platform would.
    config = { ...config, WEBHOOK_SECRET: config.WEBHOOK_SECRET ?? randomBytes(18).toString('base64url') }
    // The built-in emulator listens on loopback only, so its token is no secret.
    const token = 'demo-token'
    emulator = await listening(startEmulator({
      port: config.EMULATOR_PORT,
      host: '127.0.0.1',
      tokens: [token],
      holdMs: config.EMULATOR_HOLD_MS,
      profiles: parseProfiles(config.EMULATOR_PROFILE ?? '')
    }), { port: config.EMULATOR_PORT, host: '127.0.0.1', setting: 'EMULATOR_PORT', hostSetting: undefined })
    channels = [{ name: 'default', url: emulator.url, token }]
  }

  const demoPage = config.DEMO_PAGE ?? emulator !== undefined
  const app = await buildApp(config, { channels, demoPage, logStream: logStream(config.LOG_FORMAT, process.stdout, process.env) })
  if (devSecret !== undefined) {
    if ('secret' in devSecret) {
      app.log.warn({ file: devSecret.file }, `TICKET_SECRET is not set: tickets and cursors are signed with a development secret kept in ${DEV_SECRET_FILE}, so visitors survive a restart; production must set TICKET_SECRET`)
    } else {
      app.log.warn({ file: devSecret.file, error: devSecret.error }, `could not keep a development secret in ${DEV_SECRET_FILE}`)
    }
  }
  for (const warning of channelWarnings(config)) app.log.warn(warning)
  if (emulator !== undefined) {
    app.log.warn({ emulator: emulator.origin }, 'no UPSTREAM_URL set: using the built-in Chat API emulator (operator routes at /operator/…)')
    const emu = emulator
    app.addHook('onClose', async () => { await emu.close() })
  }

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    app.log.info({ signal }, 'shutting down')
    const deadline = setTimeout(() => {
      app.log.error('shutdown deadline passed: exiting')
      process.exit(1)
    }, config.SHUTDOWN_TIMEOUT_MS)
    deadline.unref()
    app.bridge.drain().then(async () => { await app.close() }).then(() => { process.exit(0) }, (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })

  await listening(app.listen({ port: config.PORT, host: config.HOST }), { port: config.PORT, host: config.HOST, setting: 'PORT', hostSetting: 'HOST' })
  const { port } = app.server.address() as { port: number }
  const local = `${localHost(config.HOST)}:${port}`
  if (emulator !== undefined && config.WEBHOOK_SECRET !== undefined) {
    emulator.setWebhookUrl(`http://${local}/v1/webhook/default/${config.WEBHOOK_SECRET}`)
  }

  const socket = `ws://${local}/v1/ws`
  const page = demoPage ? `http://${local}/` : undefined
  // The terminal chat finds a bridge on the default address by itself; on any other it needs BRIDGE_URL.
  const chat = socket === 'ws://127.0.0.1:3000/v1/ws' ? 'npm run chat' : `BRIDGE_URL=${socket} npm run chat`
  const where = `socket URL ${socket}${emulator === undefined ? '' : `, built-in Chat API emulator at ${emulator.url}`}`
  const summary = page === undefined
    ? `chatapi-bridge ready: ${where}; try \`${chat}\``
    : `chatapi-bridge ready: open ${page} for the demo chat, or try \`${chat}\`; ${where}`
  app.log.info({ port, socket, demoPage: page, emulator: emulator?.url, chat }, summary)
  // A person at a terminal gets the same in plain lines; logs that go to a file or a pipeline get the line above only.
  if (process.stderr.isTTY) {
    const rows: Array<[string, string | undefined]> = [
      ['demo chat page', page],
      ['socket', socket],
      ['emulator', emulator === undefined ? undefined : `${emulator.url} (no UPSTREAM_URL set)`],
      ['terminal chat', chat]
    ]
    const lines = rows.filter((r): r is [string, string] => r[1] !== undefined).map(([k, v]) => `  ${k.padEnd(15)} ${v}`)
    const show = (): void => { process.stderr.write(`\nchatapi-bridge is ready\n${lines.join('\n')}\n\n`) }
    // pino writes stdout asynchronously (and its flush does not wait for writes in flight): a moment's
    // wait puts the block below the ready line rather than above it.
    setTimeout(show, 50).unref()
  }
}

interface Listener {
  port: number
  host: string
  /** The setting that chose the port. */
  setting: string
  /** The setting that chose the address; undefined for a fixed one. */
  hostSetting: string | undefined
}

/** Tries every address and port the start will listen on, and throws a StartError naming the settings of those that fail. */
async function checkListeners (config: Config, builtIn: boolean): Promise<void> {
  const wanted: Listener[] = [{ port: config.PORT, host: config.HOST, setting: 'PORT', hostSetting: 'HOST' }]
  if (builtIn) wanted.push({ port: config.EMULATOR_PORT, host: '127.0.0.1', setting: 'EMULATOR_PORT', hostSetting: undefined })
  if (config.METRICS && config.METRICS_PORT !== undefined) wanted.push({ port: config.METRICS_PORT, host: config.HOST, setting: 'METRICS_PORT', hostSetting: 'HOST' })
  // Two settings on one port would pass each its own check and then collide.
  for (const [i, a] of wanted.entries()) {
    const b = wanted.slice(i + 1).find((w) => w.port === a.port && w.port !== 0)
    if (b !== undefined) throw new StartError(`${a.setting} and ${b.setting} are both ${a.port}: each listener needs a port of its own`, EX_CONFIG)
  }
  const hostProblem = await tryListen(0, config.HOST)
  if (hostProblem !== undefined) throw listenError(hostProblem, wanted[0] as Listener)
  const taken: Listener[] = []
  for (const l of wanted) {
    if (l.port === 0) continue
    const problem = await tryListen(l.port, l.host)
    if (problem?.code === 'EADDRINUSE') taken.push(l)
    else if (problem !== undefined) throw listenError(problem, l)
  }
  if (taken.length === 1) throw listenError({ code: 'EADDRINUSE' }, taken[0] as Listener)
  if (taken.length > 1) {
    const ports = taken.map((l) => `${l.port} (${l.setting})`).join(' and ')
    throw new StartError(`ports ${ports} are already in use: another chatapi-bridge is probably running; stop it, or set ${taken.map((l) => l.setting).join(' and ')} to free ports`, 1)
  }
}

/** Listens on `port` of `host` and lets go at once; the error, if it cannot. */
async function tryListen (port: number, host: string): Promise<NodeJS.ErrnoException | undefined> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', (err) => { resolve(err) })
    server.listen({ port, host }, () => { server.close(() => { resolve(undefined) }) })
  })
}

/** A listen that fails after the check (another process took the port in between) fails the same plain way. */
async function listening<T> (start: Promise<T>, l: Listener): Promise<T> {
  try {
    return await start
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (typeof e.code === 'string' && /^(EADDRINUSE|EACCES|EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN|EAI_FAIL|EINVAL)$/.test(e.code)) throw listenError(e, l)
    throw err
  }
}

/** What a failed listen means to the person starting the bridge, and which setting to change. */
function listenError (err: { code?: string | undefined }, l: Listener): StartError {
  const what = `port ${l.port} (${l.setting})`
  switch (err.code) {
    case 'EADDRINUSE': {
      const who = l.setting === 'EMULATOR_PORT'
        ? 'the built-in emulator of another chatapi-bridge (npm start) or `npm run emulator` may be running there'
        : 'another chatapi-bridge may be running'
      return new StartError(`${what} is already in use: ${who}; stop it, or set ${l.setting} to a free port`, 1)
    }
    case 'EACCES':
      return new StartError(`${what} needs privileges this process does not have: set ${l.setting} to a port above 1023`, 1)
    default: {
      // Anything else is the address: not one of this machine's, or no address at all.
      const setting = l.hostSetting ?? 'the address'
      const why = err.code === 'EADDRNOTAVAIL'
        ? 'it is not an address of this machine'
        : err.code === 'ENOTFOUND' || err.code?.startsWith('EAI_') === true ? 'it is neither an IP address nor a known host name' : 'it cannot be listened on'
      return new StartError(`${setting}=${JSON.stringify(l.host)} is not usable: ${why} (${err.code ?? 'unknown error'}); use 127.0.0.1 for this machine only, or 0.0.0.0 for every interface (e.g. in a container)`, EX_CONFIG)
    }
  }
}

/**
 * The secret kept in `file`, or a new one written there (mode 0600) when
 * there is none yet. Undefined secret, with the reason, when the file can be
 * neither read nor written (a read-only directory): the start then goes on
 * with a random secret, as in production without TICKET_SECRET.
 */
function keptSecret (file: string): { file: string, secret: string } | { file: string, error: string } {
  try {
    const kept = readFileSync(file, 'utf8').trim()
    if (kept.length >= 16) return { file, secret: kept }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { file, error: (err as Error).message }
  }
  const secret = randomBytes(32).toString('base64url')
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    writeFileSync(file, `${secret}\n`, { mode: 0o600 })
    // The mode above applies to a new file only; one that was there (and unusable) is made private too.
    chmodSync(file, 0o600)
    return { file, secret }
  } catch (err) {
    return { file, error: (err as Error).message }
  }
}

/** How this machine reaches the bridge in a URL: loopback for a wildcard address, brackets around IPv6. */
function localHost (host: string): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  return reachable.includes(':') ? `[${reachable}]` : reachable
}

main().catch((err: unknown) => {
  if (err instanceof StartError) {
    process.stderr.write(`chatapi-bridge: cannot start: ${err.message}\n`)
    process.exit(err.exitCode)
  }
  process.stderr.write(`chatapi-bridge: failed to start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
