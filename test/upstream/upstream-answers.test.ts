import t from 'tap'
import type { Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { startEmulator } from '../../dist/emulator/index.js'
import { TOKEN, until } from '../fixtures/bridge.js'
import { openClient, type TestClient } from '../fixtures/ws-client.js'

interface Line { msg: string, level: number, [k: string]: unknown }

/** A bridge on one channel whose token is `token`, its log lines kept. */
async function bridgeOn (t: Test, url: string, token: string, env: Record<string, string> = {}) {
  const lines: Line[] = []
  const raw: string[] = []
  const config = loadConfig({ LOG_LEVEL: 'info', BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '20', ...env })
  const app = await buildApp(config, { channels: [{ name: 'default', url, token }], logStream: { write: (l) => { raw.push(l); lines.push(JSON.parse(l)) } } })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const open = async (): Promise<TestClient> => await openClient(t, `ws://127.0.0.1:${port}/v1/ws`)
  return { app, lines, raw, open, httpUrl: `http://127.0.0.1:${port}` }
}

t.test('the platform\'s 404 "config not found" refuses the channel: 4502, polling stops, new sockets refused, one warn line, a metric', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500, profiles: ['not-found-token'] })
  t.teardown(async () => { await emulator.close() })
  const wrong = 'GNVXJdeo:0000000000000000000000000000000000000000'
  const b = await bridgeOn(t, emulator.url, wrong)
  for (let i = 0; i < 3; i++) {
    const c = await b.open()
    c.send({ type: 'hello' })
    t.equal(await c.closed(), 4502, `socket ${i} closed with 4502`)
  }
  const polls = emulator.requests.filter((r) => r.route === 'events').length
  t.ok(polls <= 1, `no poll retried against a refused token (${polls})`)
  const warns = b.lines.filter((l) => l.level === 40 && /refuses the channel token/.test(l.msg))
  t.equal(warns.length, 1, 'one warn line')
  t.notOk(b.raw.join('').includes(wrong), 'the token is in no log line')
  t.notOk(b.raw.join('').includes(encodeURIComponent(wrong)), 'not even percent-encoded')
  const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text()
  t.match(metrics, /bridge_upstream_channel_refused\{channel="default"\} 1/)
})

t.test('a token accepted at start-up is logged once; a 404 on a method that is not there fails that request alone', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500 })
  t.teardown(async () => { await emulator.close() })
  const b = await bridgeOn(t, emulator.url, TOKEN)
  t.equal(b.lines.filter((l) => l.msg === 'upstream accepts the channel token').length, 1)
  emulator.faults.add({ route: 'history', kind: 'status', status: 404 })
  const c = await b.open()
  await c.hello()
  const r = await c.request({ type: 'history', id: 'h1' })
  t.match(r.error, { code: 'UPSTREAM_REJECTED', status: 404 })
  t.equal((await c.request({ type: 'send', id: 's1', query: 'still fine' })).ok, true)
})

/**
 * An upstream that echoes the token in every form it could: in the `token`
 * field, in a message text, percent-encoded in a URL, in a key; for sends
 * and in its events.
 */
function echoingUpstream (token: string): ReturnType<typeof createServer> {
  const enc = encodeURIComponent(token)
  // Stamped a little ahead, so that it comes after any socket's welcome.
  const at = new Date(Date.now() + 2000).toISOString().slice(0, -1)
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? ''
    res.setHeader('content-type', 'application/json')
    const echo = { token, path: url, note: `you called /chatapi/${token}`, link: `https://bot.example/chatapi/${enc}/x`, lower: `path ${enc.toLowerCase()}`, [`key-${token}`]: 1 }
    if (url.includes('/events')) {
      const ts = new URL(url, 'http://x').searchParams.get('ts')
      if (ts !== null && Number(ts) > Date.parse(at + 'Z')) {
        setTimeout(() => { res.end('{"events":[]}') }, 300)
        return
      }
      res.end(JSON.stringify({ events: [{ type: 'agentResponse', event: { ...echo, text: 'hi', timestamp: at } }] }))
      return
    }
    if (url.includes('message-not-read-count')) {
      res.end('{"count":0}')
      return
    }
    res.end(JSON.stringify({ ...echo, questionId: 'q1', data: { answer: `token ${token}` }, timestamp: at }))
  })
}

/** Every frame a socket gets from a bridge on the echoing upstream (an event, and the answer to a send), as one text. */
async function echoedFrames (t: Test, token: string): Promise<string> {
  const server = echoingUpstream(token)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  const b = await bridgeOn(t, `http://127.0.0.1:${port}/chatapi`, token)
  const c = await b.open()
  await c.hello()
  await c.next((f) => f.type === 'event')
  const r = await c.request({ type: 'send', id: 's', query: 'x' })
  t.equal(r.ok, true)
  return JSON.stringify(c.frames)
}

t.test('the token reaches no client in any form the upstream echoes it', async (t) => {
  const token = 'GNVXJdeo:718e36f7005fbba3e2a9696784b83dc3bd0f3d9a'
  const wire = await echoedFrames(t, token)
  for (const form of [token, encodeURIComponent(token), encodeURIComponent(token).toLowerCase(), '718e36f7005fbba3e2a9696784b83dc3bd0f3d9a']) {
    t.notOk(wire.includes(form), `not in a frame: ${form.slice(0, 12)}…`)
  }
  t.match(wire, /\[redacted\]/, 'masked where it was')
})

t.test('a token with a slash and a colon is masked in the form the bridge sends it in, too', async (t) => {
  const token = 'GNVXJdeo:718e/36f7005fbba3e2a9'
  const sent = 'GNVXJdeo:718e%2F36f7005fbba3e2a9'
  const wire = await echoedFrames(t, token)
  t.match(wire, /chatapi\/\[redacted\]/, 'the echoed request path reached the client masked')
  for (const form of [token, sent, encodeURIComponent(token)]) t.notOk(wire.includes(form), `not in a frame: ${form}`)
})

t.test('an expired hold answered 408 is an empty answer, not a failure', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 200, profiles: ['timeout-408'] })
  t.teardown(async () => { await emulator.close() })
  const b = await bridgeOn(t, emulator.url, TOKEN)
  const c = await b.open()
  const w = await c.hello()
  const id = w.clientId as string
  await until(() => emulator.requests.filter((r) => r.route === 'events' && r.clientId === id).length >= 4, 10_000, 'several expired holds')
  emulator.agentReply(TOKEN, id, 'on time')
  const started = Date.now()
  await c.next((f) => f.type === 'event')
  t.ok(Date.now() - started < 1000, 'the reply came at once: no backoff grew while idle')
  t.equal(b.lines.filter((l) => /upstream poll failed/.test(l.msg)).length, 0, 'no failure logged')
})

t.test('a misbehaving upstream is reported once per channel in the log, and counted in /metrics', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500, profiles: ['no-hold', 'untimed-state', 'late-stamps'] })
  t.teardown(async () => { await emulator.close() })
  const b = await bridgeOn(t, emulator.url, TOKEN)
  const clients = await Promise.all([0, 1, 2].map(async () => await b.open()))
  const ids = await Promise.all(clients.map(async (c) => (await c.hello()).clientId as string))
  for (const id of ids) emulator.publish(TOKEN, id, 'stateUpdate', { state: { n: 1 } })
  await Promise.all(clients.map(async (c) => await c.next((f) => f.type === 'event')))
  // A send whose answer is stored a second late, stamped with the request's time.
  const r = await clients[0]?.request({ type: 'send', id: 's', query: 'hello' })
  const qid = (r?.result as { questionId: string }).questionId
  await clients[0]?.next((f) => f.type === 'event' && JSON.stringify(f).includes('botResponse') && JSON.stringify(f).includes(qid), 8000)
  const quirks = (kind: string): Line[] => b.lines.filter((l) => l.quirk === kind)
  for (const kind of ['quick_empty', 'untimed_event']) t.equal(quirks(kind).length, 1, `${kind}: one line`)
  t.ok(quirks('late_stamp').length <= 1, 'late stamps: at most one line')
  const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text()
  const count = Number(/bridge_upstream_quirks_total\{channel="default",quirk="quick_empty"\} (\d+)/.exec(metrics)?.[1] ?? 0)
  t.ok(count >= 3, `quick empty answers counted (${count})`)
  for (const c of clients) {
    const events = c.events().map((f) => JSON.stringify(f.event))
    t.equal(new Set(events).size, events.length, 'nothing twice')
  }
})

t.test('a first chat with the built-in emulator logs no upstream quirk: a poll asked from the newest event\'s time while the bound was unknown is not a stale answer', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN] })
  t.teardown(async () => { await emulator.close() })
  const b = await bridgeOn(t, emulator.url, TOKEN, { TICKET_SECRET: 'a-ticket-secret-of-the-test-0123456789' })
  const clients = await Promise.all([0, 1, 2].map(async () => await b.open()))
  for (const [i, c] of clients.entries()) {
    await c.hello()
    const r = await c.request({ type: 'send', id: `s${i}`, query: 'hello' })
    t.equal(r.ok, true)
  }
  // The events of each send, then the polls after them: the settle poll, and the held one.
  await until(() => clients.every((c) => c.events().length >= 2), 5000, 'the events of every send')
  await until(() => b.lines.some((l) => /inclusive bound/.test(String(l.msg))), 5000, 'the bound found')
  await until(() => emulator.requests.filter((r) => r.route === 'events').length >= 3 * 4, 5000, 'the polls after the events')
  t.same(b.lines.filter((l) => l.quirk !== undefined).map((l) => l.quirk), [], 'no quirk')
  t.same(b.lines.filter((l) => l.level >= 40).map((l) => l.msg), [], 'no warning at all')
})

t.test('a server that ignores ts and returns everything at once: only what came after the welcome, once, about a poll a second', async (t) => {
  const log: Array<Record<string, unknown>> = []
  const stamp = (ms: number): string => new Date(ms).toISOString().slice(0, -1)
  for (let i = 0; i < 3; i++) log.push({ type: 'agentResponse', event: { text: `old ${i}`, timestamp: stamp(Date.now() - 10_000 + i) } })
  let polls = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('content-type', 'application/json')
    if ((req.url ?? '').includes('/events')) {
      polls++
      res.end(JSON.stringify({ events: log }))
      return
    }
    res.end('{"count":0}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const b = await bridgeOn(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}/chatapi`, TOKEN)
  const c = await b.open()
  await c.hello()
  log.push({ type: 'agentResponse', event: { text: 'new', timestamp: stamp(Date.now() + 5) } })
  await c.next((f) => f.type === 'event', 8000)
  const before = polls
  await new Promise((resolve) => setTimeout(resolve, 3000))
  t.ok(polls - before <= 6, `${polls - before} polls in 3 s`)
  t.same(c.events().map((f) => (f.event as { event: { text: string } }).event.text), ['new'], 'nothing from before the welcome, nothing twice')
})
