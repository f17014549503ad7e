import t, { type Test } from 'tap'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../dist/config.js'
import { startEmulator } from '../../dist/emulator/index.js'
import { openClient, welcomedClient } from '../fixtures/ws-client.js'
import { freePort, run, tempDir, type LogLine, type Proc } from '../fixtures/processes.js'

/**
 * What a person sees when starting the built server (and the standalone
 * emulator): the ready line, and one plain line for each common mistake.
 */
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))
const emulatorJs = fileURLToPath(new URL('../../dist/emulator/main.js', import.meta.url))

const isReady = (l: LogLine): boolean => l.msg?.startsWith('chatapi-bridge ready') === true

/** A failed start: non-zero, one line on stderr, no stack trace. */
async function failsPlainly (t: Test, p: Proc, pattern: RegExp): Promise<string> {
  const code = await p.exited
  const err = p.stderr().trim()
  t.not(code, 0, 'exits non-zero')
  t.match(err, pattern)
  t.equal(err.split('\n').length, 1, `one line: ${err}`)
  t.notMatch(err, /^\s+at /m, 'no stack trace')
  return err
}

t.test('a running bridge, and every start that collides with it', async (t) => {
  const port = await freePort()
  const first = run(t, serverJs, { PORT: String(port), EMULATOR_PORT: '0' }, tempDir(t))
  const ready = await first.line(isReady)
  const page = `http://127.0.0.1:${port}/`

  t.test('the ready line says where the demo page, the socket and the emulator are, and how to chat', async (t) => {
    t.match(ready.msg, `open ${page} for the demo chat`)
    t.match(ready.msg, /npm run chat/)
    t.equal(ready.port, port)
    t.equal(ready.demoPage, page)
    t.equal(ready.socket, `ws://127.0.0.1:${port}/v1/ws`)
    t.match(ready.emulator, /^http:\/\/127\.0\.0\.1:\d+\/chatapi$/)
    t.equal(ready.chat, `BRIDGE_URL=ws://127.0.0.1:${port}/v1/ws npm run chat`, 'off the default port, the chat is told where to go')
    const res = await fetch(page)
    t.equal(res.status, 200, 'the demo page is there')
    await res.body?.cancel()
  })

  const emulatorPort = new URL(String(ready.emulator)).port
  t.test('a second bridge on the same EMULATOR_PORT names EMULATOR_PORT', async (t) => {
    const p = run(t, serverJs, { PORT: '0', EMULATOR_PORT: emulatorPort }, tempDir(t))
    await failsPlainly(t, p, new RegExp(`port ${emulatorPort} \\(EMULATOR_PORT\\) is already in use`))
    t.notOk(p.lines.some((l) => l.msg?.includes('built-in Chat API emulator') === true), 'nothing started before the check')
  })

  t.test('a second bridge on the same PORT names PORT', async (t) => {
    const p = run(t, serverJs, { PORT: String(port), EMULATOR_PORT: '0' }, tempDir(t))
    await failsPlainly(t, p, new RegExp(`port ${port} \\(PORT\\) is already in use: another chatapi-bridge may be running`))
  })

  t.test('the same start twice names both ports', async (t) => {
    const p = run(t, serverJs, { PORT: String(port), EMULATOR_PORT: emulatorPort }, tempDir(t))
    await failsPlainly(t, p, /ports .*\(PORT\) and .*\(EMULATOR_PORT\) are already in use/)
  })

  t.test('the standalone emulator on the bridge\'s emulator port names EMULATOR_PORT', async (t) => {
    const p = run(t, emulatorJs, { EMULATOR_PORT: emulatorPort }, tempDir(t))
    await failsPlainly(t, p, new RegExp(`port ${emulatorPort} \\(EMULATOR_PORT\\) is already in use`))
  })

  t.test('METRICS_PORT on a taken port names METRICS_PORT', async (t) => {
    const p = run(t, serverJs, { PORT: '0', EMULATOR_PORT: '0', METRICS_PORT: String(port) }, tempDir(t))
    await failsPlainly(t, p, /\(METRICS_PORT\) is already in use/)
  })
})

t.test('an address that cannot be bound names HOST, before anything starts', async (t) => {
  const p = run(t, serverJs, { HOST: '999.1.1.1', PORT: '0', EMULATOR_PORT: '0' }, tempDir(t))
  await failsPlainly(t, p, /HOST="999\.1\.1\.1" is not usable/)
  t.same(p.lines, [], 'no log line: not even the emulator started')
})

t.test('a short TICKET_SECRET is named, its value is not shown', async (t) => {
  const p = run(t, serverJs, { TICKET_SECRET: 'short' }, tempDir(t))
  t.equal(await p.exited, 78, 'exits 78, as for any wrong setting')
  t.match(p.stderr(), /TICKET_SECRET/)
  t.notMatch(p.stderr(), /short/)
})

/** The message of the ConfigError that `env` raises; empty when it raises none. */
function configError (env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    return (err as Error).message
  }
  return ''
}

t.test('no config error shows a secret, or a setting that may hold one', async (t) => {
  const upstream = { UPSTREAM_URL: 'https://bot.jaicp.com/chatapi' }
  const cases: Array<Record<string, string>> = [
    { TICKET_SECRET: 'sEcReT-1' },
    { JWT_SECRET: 'sEcReT-2' },
    { WEBHOOK_SECRET: 'sEcReT-3 with spaces' },
    { REDIS_URL: 'http://:sEcReT-4@redis' },
    { REDIS_OPTIONS: '{"password":"sEcReT-5"' },
    { ...upstream, CHATAPI_TOKEN: 'sEcReT 6' },
    { CHANNELS: '{"a":{"url":"https://x/chatapi","token":"sEcReT 7"}}' },
    { CHANNELS: '{"a":{"url":"https://x/chatapi","token":"sEcReT-8","webhookSecret":"short"}}' }
  ]
  for (const env of cases) {
    const message = configError(env)
    t.not(message, '', `${Object.keys(env).join(', ')} is refused`)
    t.notMatch(message, /sEcReT/, message)
  }
  t.match(configError({ TICKET_SECRET: 'sEcReT-1' }), /TICKET_SECRET \(8 characters, not shown\)/, 'the length is shown, to tell a short secret')
  t.match(configError({ UPSTREAM_URL: 'ftp://user:sEcReT@host/chatapi', CHATAPI_TOKEN: 't' }), /UPSTREAM_URL="ftp:\/\/\*\*\*@host\/chatapi"/, 'a URL is shown without its user:password')
})

t.test('in development the ticket secret is kept in the working directory, so a visitor survives a restart', async (t) => {
  const dir = tempDir(t)
  const env = { PORT: '0', EMULATOR_PORT: '0', DRAIN_MS: '100' }
  const first = run(t, serverJs, env, dir)
  const ready = await first.line(isReady)
  t.ok(first.lines.some((l) => l.msg?.includes('development secret kept in .chatapi-bridge/dev-secret') === true && l.msg.includes('production must set TICKET_SECRET')), 'the log says so')
  t.notOk(first.lines.some((l) => l.msg?.includes('random secret') === true), 'no random secret')
  const a = await welcomedClient(t, String(ready.socket))
  const { clientId, ticket } = a.welcome
  t.type(ticket, 'string')
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'the first one stops cleanly')

  const file = join(dir, '.chatapi-bridge', 'dev-secret')
  t.ok(existsSync(file), 'the secret is in .chatapi-bridge/dev-secret')
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only')

  const second = run(t, serverJs, env, dir)
  const again = await second.line(isReady)
  const b = await welcomedClient(t, String(again.socket), { auth: ticket })
  t.equal(b.welcome.clientId, clientId, 'the same visitor after the restart')
})

t.test('NODE_ENV=production keeps the random secret and writes nothing', async (t) => {
  const dir = tempDir(t)
  const p = run(t, serverJs, { PORT: '0', EMULATOR_PORT: '0', NODE_ENV: 'production' }, dir)
  await p.line(isReady)
  t.ok(p.lines.some((l) => l.msg?.includes('a random secret is used') === true), 'the warning of a random secret')
  t.notOk(existsSync(join(dir, '.chatapi-bridge')), 'no file written')
})

t.test('a real upstream: the random secret as before, and a refused token is logged once per channel, by name', async (t) => {
  const emulator = await startEmulator({ tokens: ['good-token'], holdMs: 500 })
  t.teardown(async () => { await emulator.close() })
  const dir = tempDir(t)
  const wrong = 'wrong-token-0123456789'
  const p = run(t, serverJs, {
    PORT: '0',
    UPSTREAM_URL: emulator.url,
    CHATAPI_TOKEN: wrong,
    CHANNELS: JSON.stringify({ sales: { url: emulator.url, token: `${wrong}-2` } })
  }, dir)
  const ready = await p.line(isReady)
  t.ok(p.lines.some((l) => l.msg?.includes('a random secret is used') === true), 'the warning of a random secret')
  t.notOk(existsSync(join(dir, '.chatapi-bridge')), 'no development secret with a real upstream')
  const refusal = async (channel: string): Promise<LogLine> => await p.line((l) => l.level === 40 && l.channel === channel && l.msg?.includes('refuses the channel token') === true)
  t.match((await refusal('default')).msg, /of "default".*check CHATAPI_TOKEN/)
  t.match((await refusal('sales')).msg, /of "sales".*check the "token" of "sales" in CHANNELS/)
  const c = await openClient(t, String(ready.socket))
  c.send({ type: 'hello' })
  t.equal(await c.closed(), 4502, 'a socket of the refused channel is closed with 4502')
  t.equal(p.lines.filter((l) => l.msg?.includes('refuses the channel token') === true).length, 2, 'once per channel')
  t.notOk(JSON.stringify(p.lines).includes(wrong), 'no token in the log')
})
