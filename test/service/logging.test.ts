import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { startEmulator } from '../../dist/emulator/index.js'
import { logStream, prettyLine, prettyStream } from '../../dist/lib/pretty-log.js'
import { serverOptions } from '../../dist/plugins/server-options.js'
import { TOKEN, until } from '../fixtures/bridge.js'
import { freePort, run, tempDir, type LogLine, type Proc } from '../fixtures/processes.js'
import { pollsHeld } from '../fixtures/waits.js'
import { openClient } from '../fixtures/ws-client.js'

t.test('an outage seen by many pollers is logged once, and its end once, with a count', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 300 })
  t.teardown(async () => { await emulator.close() })
  const lines: Array<{ msg: string, failures?: number, level: number }> = []
  const config = loadConfig({ LOG_LEVEL: 'info', BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '20' })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logStream: { write: (l) => { lines.push(JSON.parse(l)) } } })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/ws`
  const clients = await Promise.all(Array.from({ length: 20 }, async () => await openClient(t, url)))
  const ids = await Promise.all(clients.map(async (c) => (await c.hello()).clientId as string))
  await pollsHeld(emulator, ids.map((clientId) => ({ clientId })), 1)

  emulator.faults.add({ route: 'events', kind: 'status', status: 503, count: Infinity })
  for (const id of ids) emulator.agentReply(TOKEN, id, 'wake up')
  const failed = (): number => emulator.requests.filter((r) => r.route === 'events').length
  const before = failed()
  await until(() => failed() > before + 100, 10_000, 'a hundred failed polls')
  emulator.faults.clear()
  // The polls work again once a new event reaches every client.
  for (const id of ids) emulator.agentReply(TOKEN, id, 'back')
  await Promise.all(clients.map(async (c) => await c.next((f) => f.type === 'event' && JSON.stringify(f).includes('back'))))

  const failures = lines.filter((l) => l.msg.startsWith('upstream poll failed'))
  const recoveries = lines.filter((l) => l.msg === 'upstream polls recovered')
  t.equal(failures.length, 1, 'one line for the outage')
  t.equal(recoveries.length, 1, 'one line for its end')
  t.ok((recoveries[0]?.failures ?? 0) > 100, `with the count (${recoveries[0]?.failures ?? 0})`)
})

const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))
const emulatorJs = fileURLToPath(new URL('../../dist/emulator/main.js', import.meta.url))
/** The head of a pretty line: local time and the level word, padded. */
const prettyHead = (level: string): RegExp => new RegExp(`^\\d{2}:\\d{2}:\\d{2}\\.\\d{3} ${level.padEnd(5)} `)
const isJson = (l: LogLine): boolean => l.level !== undefined

/** A built bridge on free ports of 127.0.0.1, with its built-in emulator, until its ready line; stopped with SIGTERM by the caller. */
async function startedBridge (t: Test, env: Record<string, string>): Promise<{ p: Proc, ready: LogLine }> {
  const [port, emulatorPort] = [await freePort(), await freePort()]
  const p = run(t, serverJs, { HOST: '127.0.0.1', PORT: String(port), EMULATOR_PORT: String(emulatorPort), DRAIN_MS: '100', ...env }, tempDir(t))
  const ready = await p.line((l) => l.msg?.includes('chatapi-bridge ready') === true)
  return { p, ready }
}

t.test('LOG_FORMAT chooses how the built bridge logs', async (t) => {
  t.test('pretty: a line a person reads, no JSON', async (t) => {
    const { p, ready } = await startedBridge(t, { LOG_FORMAT: 'pretty' })
    t.match(ready.msg, prettyHead('INFO'), 'time and level first')
    t.match(ready.msg, /INFO {2}chatapi-bridge ready: open http:\/\/127\.0\.0\.1:\d+\/ for the demo chat/)
    t.match(ready.msg, / port=\d+$/, 'the port, which the message does not say on its own')
    t.notMatch(ready.msg, /socket=|demoPage=|emulator=|chat=/, 'the addresses the message says are not said twice')
    t.ok(p.lines.some((l) => prettyHead('WARN').test(l.msg ?? '') && l.msg?.includes('TICKET_SECRET is not set') === true), 'warnings too')
    t.notOk(p.lines.some((l) => l.msg?.includes('\u001b[') === true), 'no colour on a pipe')
    p.child.kill('SIGTERM')
    t.equal(await p.exited, 0)
    t.same(p.lines.filter(isJson), [], 'not one JSON line')
  })

  for (const env of [{ LOG_FORMAT: 'json' }, {}] as Array<Record<string, string>>) {
    t.test(`${env.LOG_FORMAT === undefined ? 'unset, on a pipe' : 'json'}: JSON lines`, async (t) => {
      const { p, ready } = await startedBridge(t, env)
      t.equal(ready.level, 30, 'the ready line is JSON')
      t.type(ready.socket, 'string', 'with its fields')
      p.child.kill('SIGTERM')
      t.equal(await p.exited, 0)
      t.same(p.lines.filter((l) => !isJson(l)), [], 'every line is JSON')
    })
  }

  t.test('a LOG_FORMAT that is none of them stops the start, naming it', async (t) => {
    const p = run(t, serverJs, { PORT: '0', EMULATOR_PORT: '0', LOG_FORMAT: 'xml' }, tempDir(t))
    t.equal(await p.exited, 78, 'exits 78, as for any wrong setting')
    t.match(p.stderr(), /LOG_FORMAT="xml" is not valid: expected .*"json" or "pretty"/)
  })
})

t.test('pretty lines keep the redaction, show an error with its stack, and nest objects as JSON', async (t) => {
  const out: string[] = []
  const config = loadConfig({ LOG_LEVEL: 'info' })
  const app = Fastify(serverOptions(config, { logStream: prettyStream({ write: (s) => out.push(s) }, { color: false }) }))
  t.teardown(async () => { await app.close() })
  const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })
  app.log.warn({ token: 'tok-secret-0123456789', hello: { ticket: 'tkt-secret', n: 2 }, err }, 'upstream call failed')
  t.equal(out.length, 1, 'one write for one line')
  const [first = '', ...stack] = (out[0] ?? '').split('\n').slice(0, -1)
  t.match(first, prettyHead('WARN'))
  t.equal(first.replace(prettyHead('WARN'), ''), 'upstream call failed token=[redacted] hello={"ticket":"[redacted]","n":2} err="connect ECONNREFUSED 127.0.0.1:9" err.code=ECONNREFUSED')
  t.ok(stack.length > 0 && stack.every((l) => /^ {4}at /.test(l)), 'the stack, indented, below the line')
  t.notMatch(out.join(''), /secret/, 'no secret in the output')
})

t.test('the pretty format, line by line', async (t) => {
  const time = new Date(2030, 0, 2, 3, 4, 5, 67).getTime()
  const line = (rec: Record<string, unknown>, color = false): string => prettyLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', v: 1, ...rec }), { color })
  t.equal(line({ msg: 'hi' }), '03:04:05.067 INFO  hi', 'local time, the level word, the message; pino\'s own fields gone')
  t.equal(line({ msg: 'm', a: 'one', b: 'two words', c: '', d: 'say "x"', e: 3, f: true, g: null, h: [1, 'x'] }),
    '03:04:05.067 INFO  m a=one b="two words" c="" d="say \\"x\\"" e=3 f=true g=null h=[1,"x"]')
  t.equal(line({ msg: 'at http://127.0.0.1:1/x', url: 'http://127.0.0.1:1/x', id: 'x' }), '03:04:05.067 INFO  at http://127.0.0.1:1/x id=x', 'a value the message says in full is not repeated; a short one is')
  t.equal(line({ level: 40, msg: 'w' }, true), '03:04:05.067 \u001b[33mWARN \u001b[0m w', 'warn in yellow')
  t.equal(line({ level: 50, msg: 'e' }, true), '03:04:05.067 \u001b[31mERROR\u001b[0m e', 'error in red')
  t.equal(line({ level: 60, msg: 'f' }, true), '03:04:05.067 \u001b[31mFATAL\u001b[0m f', 'fatal in red')
  t.equal(line({ level: 20, msg: 'd' }, true), '03:04:05.067 \u001b[2mDEBUG\u001b[0m d', 'debug dim')
  t.equal(line({ level: 10, msg: 't' }, true), '03:04:05.067 \u001b[2mTRACE\u001b[0m t', 'trace dim')
  t.equal(line({ msg: 'i' }, true), '03:04:05.067 INFO  i', 'info plain')
  t.equal(line({ msg: 'x', error: 'EACCES: permission denied' }), '03:04:05.067 INFO  x error="EACCES: permission denied"', 'an error that is a string is a field')
  t.equal(line({ msg: 'x', error: { message: 'no', stack: 'Error: no' } }), '03:04:05.067 INFO  x error=no', 'no frames, no lines below')
  t.equal(line({ msg: 'x', err: { message: 'no' } }), '03:04:05.067 INFO  x err=no', 'nor without a stack')
  t.equal(line({ level: 35, msg: 'x' }), '03:04:05.067 35    x', 'a level of no name as its number')
  t.equal(prettyLine(JSON.stringify({ level: 'notice', n: 1 }), { color: true }), 'NOTICE n=1', 'a level by name; no time, no message: left out')
  t.equal(prettyLine(JSON.stringify({ msg: 'x' }), { color: false }), '?     x', 'no level')
  t.equal(prettyLine('not json {', { color: true }), 'not json {', 'a line that is not JSON is left as it is')
  t.equal(prettyLine('[1,2]', { color: false }), '[1,2]', 'so is JSON that is no object')
})

t.test('LOG_FORMAT and the terminal choose the stream', async (t) => {
  const rec = JSON.stringify({ level: 40, time: Date.now(), msg: 'w' })
  const through = (format: 'auto' | 'json' | 'pretty', isTTY: boolean | undefined, env: Record<string, string> = {}): string | undefined => {
    const out: string[] = []
    const stream = logStream(format, { write: (s) => out.push(s), isTTY }, env)
    if (stream === undefined) return undefined
    stream.write(`${rec}\n`)
    return out.join('')
  }
  t.equal(through('auto', undefined), undefined, 'auto on a pipe: pino\'s JSON')
  t.ok(through('auto', true)?.endsWith('\u001b[33mWARN \u001b[0m w\n'), 'auto on a terminal: pretty, in colour')
  t.match(through('auto', true, { NO_COLOR: '1' }), /\d WARN {2}w\n$/, 'NO_COLOR takes the colour away')
  t.ok(through('auto', true, { NO_COLOR: '' })?.includes('\u001b[33m'), 'an empty NO_COLOR does not')
  t.equal(through('json', true), undefined, 'json even on a terminal')
  t.match(through('pretty', undefined), /\d WARN {2}w\n$/, 'pretty on a pipe, without colour')

  const out: string[] = []
  prettyStream({ write: (s) => out.push(s) }, { color: false }).write(`${rec}\nplain\n${rec}`)
  t.match(out.join(''), /^\S+ WARN {2}w\nplain\n\S+ WARN {2}w\n$/, 'each line of a write on its own; one without its newline is ended')
})

t.test('the standalone emulator logs no line per request at the default level, and both at debug', async (t) => {
  const requests = async (port: number): Promise<void> => {
    const base = `http://127.0.0.1:${port}/chatapi/demo-token`
    const answers = [
      await fetch(`${base}?clientId=me&query=hi`),
      await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: 'me', query: 'buttons' }) }),
      await fetch(`${base}/events?clientId=other`),
      await fetch(`${base}/client/me/state`),
      await fetch(`${base}/client/me/history`)
    ]
    for (const a of answers) await a.body?.cancel()
    t.same(answers.map((a) => a.status), [200, 200, 200, 200, 200], 'five requests answered')
  }
  const started = async (env: Record<string, string>): Promise<{ p: Proc, port: number }> => {
    const port = await freePort()
    const p = run(t, emulatorJs, { EMULATOR_PORT: String(port), EMULATOR_HOLD_MS: '50', ...env }, tempDir(t))
    await p.line((l) => l.msg?.startsWith('Chat API emulator at') === true)
    return { p, port }
  }
  const stopped = async (p: Proc): Promise<string[]> => {
    p.child.kill('SIGTERM')
    t.equal(await p.exited, 0, 'stops cleanly')
    return p.lines.map((l) => isJson(l) ? JSON.stringify(l) : l.msg ?? '')
  }

  const quiet = await started({})
  await requests(quiet.port)
  const lines = await stopped(quiet.p)
  t.same(lines.filter((l) => /request|reqId/.test(l)), [], 'no request line')
  t.same(quiet.p.lines.filter(isJson).map((l) => l.msg), [`Server listening at http://127.0.0.1:${quiet.port}`], 'of pino\'s lines, Fastify\'s start line only')

  const chatty = await started({ EMULATOR_LOG_LEVEL: 'debug', LOG_FORMAT: 'pretty' })
  await requests(chatty.port)
  const debug = await stopped(chatty.p)
  const requestLines = debug.filter((l) => prettyHead('DEBUG').test(l))
  t.equal(requestLines.filter((l) => l.includes('incoming request')).length, 5, 'one incoming line per request, at debug')
  t.equal(requestLines.filter((l) => l.includes('request completed')).length, 5, 'one completed line per request, at debug')
  t.notOk(requestLines.some((l) => l.includes('demo-token')), 'the token is not in the request lines')
})

t.test('the standalone emulator refuses a LOG_FORMAT that is none of them, naming it', async (t) => {
  const p = run(t, emulatorJs, { EMULATOR_PORT: '0', LOG_FORMAT: 'xml' }, tempDir(t))
  t.equal(await p.exited, 78)
  t.match(p.stderr(), /cannot start: LOG_FORMAT="xml" is not valid/)
})
