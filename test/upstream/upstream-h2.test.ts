import t from 'tap'
import { request } from 'undici'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { Fault } from '../../dist/emulator/index.js'
import type { TestClient } from '../fixtures/ws-client.js'

const H2C = { UPSTREAM_HTTP2: 'h2c', POLL_STARTS_PER_S: '10000', UPSTREAM_STREAMS: '100' }
const text = (f: Record<string, unknown>): string => ((f.event as { event: { text?: string } }).event.text ?? '')

type Welcomed = TestClient & { welcome: Record<string, unknown> }

async function clients (h: Harness, n: number): Promise<Welcomed[]> {
  const all: Welcomed[] = []
  // In batches, so that the test does not depend on how many sockets the bridge accepts at once.
  for (let i = 0; i < n; i += 50) {
    all.push(...await Promise.all(Array.from({ length: Math.min(50, n - i) }, async () => await h.client())))
  }
  return all
}

function heldPolls (h: Harness, cs: Welcomed[]): number {
  let n = 0
  for (const c of cs) n += h.emulator.activePolls(TOKEN, c.welcome.clientId as string)
  return n
}

t.test('the emulator speaks h2c and HTTP/1.1 on one port', async (t) => {
  const h = await startBridge(t, H2C, { http2: true })
  const res = await request(`${h.emulator.url}/${TOKEN}?clientId=plain&query=hi`)
  t.equal(res.statusCode, 200)
  t.match(await res.body.json(), { clientId: 'plain' })
  t.equal(h.emulator.connections.http2Sessions, 0, 'an HTTP/1.1 client gets no HTTP/2 session')
})

t.test('220 held polls share a few HTTP/2 connections; events and requests still work', async (t) => {
  const h = await startBridge(t, H2C, { http2: true, holdMs: 20_000 })
  const cs = await clients(h, 220)
  await until(() => heldPolls(h, cs) === 220, 20_000, '220 held polls')
  const { open, http2Sessions } = h.emulator.connections
  // 220 polls at 100 streams each need 3 connections; one more may open while the first is still connecting,
  // and the start-up check of the token keeps one of the calls' own.
  t.ok(open <= 5, `${open} connections for 220 polls`)
  t.ok(http2Sessions >= 3 && http2Sessions <= open, `${http2Sessions} HTTP/2 sessions`)

  const picked = [cs[0], cs[77], cs[219]] as Welcomed[]
  for (const [i, c] of picked.entries()) h.emulator.agentReply(TOKEN, c.welcome.clientId as string, `hello ${i}`)
  for (const [i, c] of picked.entries()) t.equal(text(await c.next((f) => f.type === 'event')), `hello ${i}`)

  const results = await Promise.all(picked.map(async (c, i) => await c.request({ type: 'send', id: `r${i}`, query: 'hi' })))
  for (const r of results) t.match(r, { type: 'result', ok: true, result: { data: { answer: String } } })
  await until(() => heldPolls(h, cs) === 220, 10_000, 'every poll held again')
  t.ok(h.emulator.connections.open <= 8, `${h.emulator.connections.open} connections with requests too`)
})

t.test('auto over a cleartext URL stays on HTTP/1.1, one connection per held poll', async (t) => {
  const h = await startBridge(t, { POLL_STARTS_PER_S: '10000' }, { http2: true, holdMs: 20_000 })
  const cs = await clients(h, 6)
  await until(() => heldPolls(h, cs) === 6, 10_000, 'six held polls')
  t.equal(h.emulator.connections.http2Sessions, 0)
  t.ok(h.emulator.connections.open >= 6, `${h.emulator.connections.open} connections`)
  const c = cs[3] as Welcomed
  h.emulator.agentReply(TOKEN, c.welcome.clientId as string, 'over http/1.1')
  t.equal(text(await c.next((f) => f.type === 'event')), 'over http/1.1')
})

t.test('over HTTP/1.1 the poll connections are bounded; waiting polls take their turn', async (t) => {
  const h = await startBridge(t, { UPSTREAM_HTTP2: 'off', UPSTREAM_POLL_CONNECTIONS: '3', POLL_STARTS_PER_S: '10000' }, { holdMs: 200 })
  const cs = await clients(h, 8)
  let most = 0
  const watch = setInterval(() => { most = Math.max(most, h.emulator.connections.open) }, 5)
  t.teardown(() => { clearInterval(watch) })
  const last = cs[7] as Welcomed
  const id = last.welcome.clientId as string
  // The upstream gives a cid only the events after its first poll: wait for that poll's turn.
  await until(() => h.emulator.requests.some((r) => r.route === 'events' && r.clientId === id), 10_000, 'the first poll of the last client')
  h.emulator.agentReply(TOKEN, id, 'in turn')
  t.equal(text(await last.next((f) => f.type === 'event', 10_000)), 'in turn')
  await until(() => h.emulator.requests.filter((r) => r.route === 'events').length >= 24, 10_000, 'polls to cycle')
  // Three for the polls, and the calls' own (the start-up check of the token made it).
  t.ok(most <= 4, `at most 3 poll connections at once: ${most - 1}`)
})

const streamFaults: Array<[string, Fault]> = [
  ['a reset stream', { kind: 'reset' }],
  ['a truncated body', { kind: 'truncated' }],
  ['a body larger than the bridge reads', { kind: 'huge' }],
  ['a hang past the hold time', { kind: 'hang' }],
  ['503', { kind: 'status', status: 503 }]
]

for (const [name, fault] of streamFaults) {
  t.test(`over HTTP/2 a poll survives ${name}, and its neighbours on the session are untouched`, async (t) => {
    const h = await startBridge(t, { ...H2C, BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '40', POLL_TIMEOUT_MS: '1000' }, { http2: true, holdMs: 300 })
    const [a, b] = await clients(h, 2) as [Welcomed, Welcomed]
    const idA = a.welcome.clientId as string
    const idB = b.welcome.clientId as string
    await pollsHeld(h.emulator, [{ clientId: idA }, { clientId: idB }], 1)
    const sessions = h.emulator.connections.accepted
    h.emulator.faults.add({ route: 'events', count: 2, ...fault })
    h.emulator.agentReply(TOKEN, idA, 'one')
    await until(() => h.emulator.faults.pending === 0, 10_000, 'faults to be used')
    h.emulator.agentReply(TOKEN, idA, 'two')
    h.emulator.agentReply(TOKEN, idB, 'neighbour')
    await a.next((f) => f.type === 'event' && text(f) === 'two', 10_000)
    await b.next((f) => f.type === 'event' && text(f) === 'neighbour', 10_000)
    t.same(a.events().map(text), ['one', 'two'], 'every event once, in order')
    t.same(b.events().map(text), ['neighbour'])
    t.equal(h.emulator.connections.accepted, sessions, 'no new connection: only streams were hit')
    if (fault.kind === 'huge') {
      // undici bounds HTTP/1.1 bodies itself but not HTTP/2 ones: the bridge must stop reading.
      const metrics = await h.app.inject('/metrics')
      t.match(metrics.body, /bridge_upstream_request_duration_seconds_count\{call="events",outcome="UPSTREAM_BAD_RESPONSE"\} 2/, 'both answers refused for their size')
    }
  })
}

t.test('over HTTP/2 a request answered with a body larger than the bridge reads fails with UPSTREAM_BAD_RESPONSE', async (t) => {
  const h = await startBridge(t, H2C, { http2: true })
  const [a] = await clients(h, 1) as [Welcomed]
  h.emulator.faults.add({ route: 'send', kind: 'huge' })
  const r = await a.request({ type: 'send', id: 'big', query: 'hi' })
  t.equal(r.ok, false)
  t.equal((r.error as { code: string }).code, 'UPSTREAM_BAD_RESPONSE')
})

t.test('calls other than polls go over HTTP/1.1 unless UPSTREAM_CALLS_HTTP2 is set', async (t) => {
  for (const [callsHttp2, expected] of [['false', '1.1'], ['true', '2.0']] as const) {
    const h = await startBridge(t, { ...H2C, UPSTREAM_CALLS_HTTP2: callsHttp2 }, { http2: true })
    const [a] = await clients(h, 1) as [Welcomed]
    const r = await a.request({ type: 'send', id: 'one', query: 'hi' })
    t.equal(r.ok, true)
    const seen = (route: string): string[] => [...new Set(h.emulator.requests.filter((q) => q.route === route).map((q) => q.httpVersion))]
    t.same(seen('send'), [expected], `UPSTREAM_CALLS_HTTP2=${callsHttp2}: the send over HTTP/${expected}`)
    t.same(seen('events'), ['2.0'], 'polls over HTTP/2 either way')
  }
})
