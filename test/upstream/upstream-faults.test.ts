import t from 'tap'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { startEmulator, type Fault } from '../../dist/emulator/index.js'
import { openClient } from '../fixtures/ws-client.js'

const FAST = { BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '40', POLL_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '400' }
const text = (f: Record<string, unknown>): string => ((f.event as { event: { text?: string } }).event.text ?? '')

const pollFaults: Array<[string, Fault]> = [
  ['503', { kind: 'status', status: 503 }],
  ['429 without Retry-After', { kind: 'status', status: 429 }],
  ['429 with Retry-After', { kind: 'status', status: 429, retryAfter: 0 }],
  ['HTML error page', { kind: 'html' }],
  ['a body that is not JSON', { kind: 'notJson' }],
  ['JSON of the wrong shape', { kind: 'badShape' }],
  ['a truncated body', { kind: 'truncated' }],
  ['a body larger than the bridge reads', { kind: 'huge' }],
  ['a reset connection', { kind: 'reset' }],
  ['a hang past the hold time', { kind: 'hang' }],
  ['duplicated events', { kind: 'duplicate' }],
  ['reordered events', { kind: 'reorder' }]
]

for (const [name, fault] of pollFaults) {
  t.test(`poll survives ${name}: every event once, in order`, async (t) => {
    const h = await startBridge(t, FAST, { holdMs: 300 })
    const a = await h.client({ cid: 'tab' })
    const clientId = a.welcome.clientId as string
    await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
    h.emulator.faults.add({ route: 'events', count: 2, ...fault })
    h.emulator.agentReply(TOKEN, clientId, 'one')
    h.emulator.agentReply(TOKEN, clientId, 'two')
    await until(() => h.emulator.faults.pending === 0, 10_000, 'faults to be used')
    h.emulator.agentReply(TOKEN, clientId, 'three')
    await a.next((f) => f.type === 'event' && text(f) === 'three', 10_000)
    t.same(a.events().map(text), ['one', 'two', 'three'])
    const polls = h.emulator.requests.filter((r) => r.route === 'events').length
    t.ok(polls < 40, `no tight loop: ${polls} polls`)
    if (fault.kind === 'huge') {
      // Well-formed but too large: it must be refused, not read and parsed.
      const metrics = await h.app.inject('/metrics')
      t.match(metrics.body, /bridge_upstream_request_duration_seconds_count\{call="events",outcome="UPSTREAM_BAD_RESPONSE"\} 2/, 'both answers refused for their size')
    }
  })
}

const requestFaults: Array<[string, Fault, Record<string, unknown>]> = [
  ['503', { kind: 'status', status: 503 }, { code: 'UPSTREAM_UNAVAILABLE', status: 503 }],
  ['400', { kind: 'status', status: 400 }, { code: 'UPSTREAM_REJECTED', status: 400 }],
  ['an HTML page', { kind: 'html' }, { code: 'UPSTREAM_UNAVAILABLE', status: 502 }],
  ['text', { kind: 'notJson' }, { code: 'UPSTREAM_BAD_RESPONSE' }],
  ['the wrong shape', { kind: 'badShape' }, { code: 'UPSTREAM_BAD_RESPONSE' }],
  ['a truncated body', { kind: 'truncated' }, { code: /UPSTREAM_(UNAVAILABLE|BAD_RESPONSE)/ }],
  ['a body larger than the bridge reads', { kind: 'huge' }, { code: 'UPSTREAM_BAD_RESPONSE' }],
  ['a reset', { kind: 'reset' }, { code: 'UPSTREAM_UNAVAILABLE' }],
  ['a hang', { kind: 'hang' }, { code: 'UPSTREAM_TIMEOUT' }]
]

t.test('request failures come back as the right error code, once, within a bounded time', async (t) => {
  const h = await startBridge(t, FAST)
  const a = await h.client()
  let n = 0
  for (const [name, fault, error] of requestFaults) {
    h.emulator.faults.add({ route: 'send', ...fault })
    const id = `r${n++}`
    const started = Date.now()
    const r = await a.request({ type: 'send', id, query: 'hello' })
    t.equal(r.ok, false, name)
    t.match(r.error, error, `${name}: ${JSON.stringify(r.error)}`)
    t.ok(Date.now() - started < 3000, `${name}: answered in bounded time`)
    t.notOk(JSON.stringify(r).includes(TOKEN), `${name}: no token`)
    t.equal(a.frames.filter((f) => f.type === 'result' && f.id === id).length, 1, `${name}: one result`)
  }
  // A transient failure is not remembered: resending the id tries again and succeeds.
  const again = a.upcoming((f) => f.type === 'result' && f.id === 'r0')
  a.send({ type: 'send', id: 'r0', query: 'hello' })
  t.equal((await again).ok, true, 'resend after 503 succeeds')
})

t.test('a refused channel token closes its sockets with 4502 and stops polling', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 300 })
  t.teardown(async () => { await emulator.close() })
  const config = loadConfig({ LOG_LEVEL: 'silent', ...FAST })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: 'revoked-token' }], logger: false })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/ws`
  const c = await openClient(t, url)
  c.send({ type: 'hello' })
  t.equal(await c.closed(), 4502)
  t.notOk(JSON.stringify(c.frames).includes('revoked-token'))
  await until(() => app.bridge.hub.stats().feeds === 0, 5000, 'feed to end')
  const polls = emulator.requests.filter((r) => r.route === 'events').length
  t.ok(polls <= 1, `at most one poll, no retry (${polls})`)
})

t.test('a 401 or 403 on one request fails that request alone; the channel and its sockets go on', async (t) => {
  const h = await startBridge(t, FAST)
  const a = await h.client()
  const b = await h.client()
  for (const status of [401, 403]) {
    h.emulator.faults.add({ route: 'send', kind: 'status', status })
    const r = await a.request({ type: 'send', id: `refused-${status}`, query: 'x' })
    t.match(r.error, { code: 'UPSTREAM_REJECTED', status })
  }
  // Both sockets still work: a request is answered, and an agent reply reaches the other client.
  t.equal((await a.request({ type: 'send', id: 'ok', query: 'hello' })).ok, true)
  await pollsHeld(h.emulator, { clientId: b.welcome.clientId as string }, 1)
  h.emulator.agentReply(TOKEN, b.welcome.clientId as string, 'still here')
  await b.next((f) => f.type === 'event' && JSON.stringify(f).includes('still here'))
  t.equal(a.ws.readyState, a.ws.OPEN)
})
