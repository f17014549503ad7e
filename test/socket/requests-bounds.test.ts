import t, { type Test } from 'tap'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startBridge, startBridgeOn, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import type { Frame, TestClient } from '../fixtures/ws-client.js'
import { startEmulator, type Emulator } from '../../dist/emulator/index.js'
import { MemoryResultCache, Requests } from '../../dist/socket/requests.js'
import { ChatApi } from '../../dist/upstream/chat-api.js'
import { clientKey } from '../../dist/lib/client-key.js'

// The request path under load from one client: its share of the upstream connections, of the
// send queue, of the time a request may take and of the result cache; and one request refused
// upstream fails alone.

const CALL_MS = 300
const isResult = (id: string) => (f: Frame): boolean => f.type === 'result' && f.id === id
const upstreamOf = (h: Harness, route: string, clientId: string): number =>
  h.emulator.requests.filter((r) => r.route === route && r.clientId === clientId).length
const queriesOf = (h: Harness, prefix: string): Array<{ query: string, at: number }> => h.emulator.requests
  .filter((r) => r.route === 'send' && (r.body as { query?: string }).query?.startsWith(prefix) === true)
  .map((r) => ({ query: (r.body as { query: string }).query, at: r.at }))

/** Sends a request again and waits for its new result (TestClient.request would find the first one). */
async function resend (c: TestClient, req: Record<string, unknown> & { type: string, id: string }): Promise<Frame> {
  const answer = c.upcoming(isResult(req.id))
  c.send(req)
  return await answer
}

/**
 * Resolves once the bridge has answered `n` requests of `type`, read from its
 * metrics: answers into a closed socket announce nothing else.
 */
async function answered (h: Harness, type: string, n: number, timeoutMs: number): Promise<void> {
  const started = Date.now()
  const count = async (): Promise<number> => {
    const m = await h.app.bridge.metrics?.requests.get()
    return (m?.values ?? []).filter((v) => v.labels.type === type).reduce((sum, v) => sum + v.value, 0)
  }
  while (await count() < n) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${n} ${type} answers`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Resolves once the emulator has received `n` requests of `route` from `clientId`. */
async function received (h: Harness, route: string, clientId: string, n: number): Promise<void> {
  if (upstreamOf(h, route, clientId) >= n) return
  await new Promise<void>((resolve) => {
    h.emulator.on('request', () => { if (upstreamOf(h, route, clientId) >= n) resolve() })
  })
}

t.test('one client flooding reads does not hold up another client\'s send', async (t) => {
  const h = await startBridge(t, { UPSTREAM_CONNECTIONS: '8', REQUEST_TIMEOUT_MS: '10000' })
  h.emulator.faults.add({ route: 'getState', kind: 'delay', delayMs: CALL_MS, count: Infinity })
  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: CALL_MS, count: Infinity })
  const first = await h.client()
  const flooder = first.welcome.clientId as string
  const sockets: TestClient[] = [first]
  for (let i = 1; i < 4; i++) sockets.push(await h.client({ auth: first.welcome.ticket }))
  const b = await h.client()
  // Each socket's whole burst (RATE_LIMIT_BURST, 40): within the rate limit.
  sockets.forEach((s, k) => { for (let i = 0; i < 40; i++) s.send({ type: 'getState', id: `a${k}-${i}` }) })
  await received(h, 'getState', flooder, 4)

  const started = Date.now()
  b.send({ type: 'send', id: 'b', query: 'hello' })
  const r = await b.next(isResult('b'), 20_000)
  const latency = Date.now() - started
  const answered = sockets.reduce((n, s) => n + s.frames.filter((f) => f.type === 'result').length, 0)
  const waiting = 160 - upstreamOf(h, 'getState', flooder)
  t.comment(`B's send took ${latency} ms against calls of ${CALL_MS} ms, with ${waiting} of A's 160 reads not yet sent upstream`)
  t.equal(r.ok, true)
  t.ok(latency < 3 * CALL_MS, `B answered within about one call (${latency} ms)`)
  t.ok(waiting > 100, `A still has dozens waiting (${waiting})`)
  t.ok(answered < 40, `A has had few answers so far (${answered})`)
})

t.test('a client\'s send queue is bounded, and its sends stop reaching the upstream once their time is up', async (t) => {
  const h = await startBridge(t, { REQUEST_TIMEOUT_MS: '1000' })
  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 200, count: Infinity })
  const a = await h.client()
  for (let i = 0; i < 40; i++) a.send({ type: 'send', id: `q${i}`, query: `queued-${i}` })
  // One runs and SEND_QUEUE_PER_CLIENT (32) wait: the other seven are refused at once.
  const limited = await Promise.all(Array.from({ length: 7 }, async (_, i) => await a.next(isResult(`q${33 + i}`), 500)))
  for (const r of limited) t.match(r, { ok: false, error: { code: 'RATE_LIMITED', message: /32 sends of this client are already waiting/ } })
  a.close()
  await a.closed()
  // Every queued send is answered (into a closed socket) once it ran or its time ran out.
  await answered(h, 'send', 40, 5000)
  const reached = queriesOf(h, 'queued-')
  t.comment(`${reached.length} of 33 queued sends reached the upstream (REQUEST_TIMEOUT_MS=1000, 200 ms a send)`)
  t.ok(reached.length <= 6, `only about REQUEST_TIMEOUT_MS of sends reached the upstream (${reached.length})`)
  t.same(reached.map((r) => r.query), reached.map((_, i) => `queued-${i}`), 'in order')
  const span = (reached.at(-1)?.at ?? 0) - (reached[0]?.at ?? 0)
  t.ok(span <= 1000, `the last was sent within REQUEST_TIMEOUT_MS of the first (${span} ms)`)
  t.notOk(reached.some((r) => /queued-(3[3-9])/.test(r.query)), 'no refused send went upstream')

  // A refused send was not kept: sent again, it runs.
  const b = await h.client({ auth: a.welcome.ticket })
  t.equal((await b.request({ type: 'send', id: 'q39', query: 'queued-39' })).ok, true)
  t.equal(queriesOf(h, 'queued-39').length, 1)
})

t.test('a socket that closes takes its queued requests with it: none of them goes upstream afterwards', async (t) => {
  const h = await startBridge(t, { UPSTREAM_CONNECTIONS: '2', UPSTREAM_CALLS_PER_CLIENT: '1' })
  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 200, count: Infinity })
  h.emulator.faults.add({ route: 'getState', kind: 'delay', delayMs: 200, count: Infinity })
  const a = await h.client()
  const clientId = a.welcome.clientId as string
  for (let i = 0; i < 20; i++) a.send({ type: 'send', id: `q${i}`, query: `left-${i}` })
  for (let i = 0; i < 20; i++) a.send({ type: 'getState', id: `g${i}` })
  await received(h, 'send', clientId, 1)
  a.close()
  await a.closed()
  await answered(h, 'send', 20, 5000)
  await answered(h, 'getState', 20, 5000)
  const sends = queriesOf(h, 'left-').length
  const reads = upstreamOf(h, 'getState', clientId)
  t.ok(sends <= 2, `${sends} of 20 sends reached the upstream: what was in flight when the socket closed, no more`)
  t.ok(reads <= 2, `${reads} of 20 reads reached the upstream`)
})

t.test('a request\'s time counts from its arrival: one that waits too long fails unsent, and its resend runs', async (t) => {
  const h = await startBridge(t, { REQUEST_TIMEOUT_MS: '1000' })
  h.emulator.faults.add({ route: 'send', kind: 'hang', count: 1 })
  const a = await h.client()
  const started = Date.now()
  for (const id of ['s1', 's2', 's3']) a.send({ type: 'send', id, query: `deadline-${id}` })
  const [s1, s2, s3] = await Promise.all(['s1', 's2', 's3'].map(async (id) => await a.next(isResult(id), 5000)))
  const took = Date.now() - started
  t.match(s1, { ok: false, error: { code: 'UPSTREAM_TIMEOUT', message: /did not answer in time/ } }, 'the sent one timed out upstream')
  for (const r of [s2, s3]) t.match(r, { ok: false, error: { code: 'UPSTREAM_TIMEOUT', message: /did not reach the upstream/ } }, `${String(r?.id)} never went`)
  t.ok(took < 2000, `all three answered about REQUEST_TIMEOUT_MS after they arrived (${took} ms)`)
  t.same(queriesOf(h, 'deadline-').map((r) => r.query), ['deadline-s1'], 'only the first reached the upstream')

  t.equal((await resend(a, { type: 'send', id: 's2', query: 'deadline-s2' })).ok, true, 'the unsent one, sent again, runs')
  t.same(await resend(a, { type: 'send', id: 's1', query: 'deadline-s1' }), s1, 'the sent one keeps its timeout')
  t.same(queriesOf(h, 'deadline-').map((r) => r.query), ['deadline-s1', 'deadline-s2'], 'each reached the upstream once')
})

t.test('a read waiting for an upstream connection past its time fails unsent; its resend runs', async (t) => {
  const h = await startBridge(t, { REQUEST_TIMEOUT_MS: '1000', UPSTREAM_CONNECTIONS: '1' })
  h.emulator.faults.add({ route: 'getState', kind: 'hang', count: 1 })
  const a = await h.client()
  const b = await h.client()
  const other = b.welcome.clientId as string
  a.send({ type: 'getState', id: 'holds' })
  await received(h, 'getState', a.welcome.clientId as string, 1)
  const r = await b.request({ type: 'getState', id: 'waits' })
  t.match(r, { ok: false, error: { code: 'UPSTREAM_TIMEOUT', message: /waited for an upstream connection.*did not reach the upstream/ } })
  t.equal(upstreamOf(h, 'getState', other), 0)
  await a.next(isResult('holds'))
  t.equal((await resend(b, { type: 'getState', id: 'waits' })).ok, true)
  t.equal(upstreamOf(h, 'getState', other), 1)
})

t.test('kept results are bounded in bytes per client: its own oldest go, not another client\'s', async (t) => {
  const h = await startBridge(t, { RESULT_CACHE_CLIENT_BYTES: '8192' })
  const a = await h.client()
  const b = await h.client()
  const reads = (c: TestClient): number => upstreamOf(h, 'getState', (c as TestClient & { welcome: Frame }).welcome.clientId as string)
  t.equal((await b.request({ type: 'getState', id: 'b1' })).ok, true)
  // About 2.5 KB a result: three fit in 8 KB.
  t.equal((await a.request({ type: 'setState', id: 'set', state: { pad: 'x'.repeat(2500) } })).ok, true)
  for (let i = 0; i < 10; i++) t.equal((await a.request({ type: 'getState', id: `g${i}` })).ok, true)
  t.equal(reads(a), 10)
  await resend(a, { type: 'getState', id: 'g9' })
  t.equal(reads(a), 10, 'the newest is kept')
  await resend(a, { type: 'getState', id: 'g0' })
  t.equal(reads(a), 11, 'the oldest was evicted: its resend ran again')
  await resend(b, { type: 'getState', id: 'b1' })
  t.equal(reads(b), 1, 'the other client\'s result is still kept')

  // A result larger than a client's share is not kept at all.
  t.equal((await a.request({ type: 'setState', id: 'set-big', state: { pad: 'y'.repeat(10_000) } })).ok, true)
  await a.request({ type: 'getState', id: 'big' })
  await resend(a, { type: 'getState', id: 'big' })
  t.equal(reads(a), 13, 'a resend of a result too large to keep runs again')
})

t.test('the cache\'s kept bytes stay within the bounds however many results come', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500 })
  t.teardown(async () => { await emulator.close() })
  const api = new ChatApi({ name: 'default', url: emulator.url, token: TOKEN }, { requestTimeoutMs: 2000, pollTimeoutMs: 2000, callsPerClient: 4 })
  t.teardown(async () => { await api.close() })
  const cache = new MemoryResultCache(60_000, 1000, 65_536, 8192)
  const r = new Requests({ apis: new Map([['default', api]]), resultCacheMs: 60_000, results: cache, resultClientBytes: 8192 })
  const ctx = (clientId: string): { channel: string, clientId: string, cid: string } => ({ channel: 'default', clientId, cid: 'tab' })
  await r.handle(ctx('quiet'), { type: 'getState', id: 'q' })
  const quiet = cache.clientBytes(clientKey('default', 'quiet'))
  await r.handle(ctx('loud'), { type: 'setState', id: 'set', state: { pad: 'z'.repeat(2500) } })
  let most = 0
  for (let i = 0; i < 50; i++) {
    await Promise.all([0, 1, 2, 3].map(async (k) => await r.handle(ctx('loud'), { type: 'getState', id: `g${i}-${k}` })))
    most = Math.max(most, cache.clientBytes(clientKey('default', 'loud')))
  }
  t.comment(`after 200 reads of 2.5 KB: ${JSON.stringify(cache.stats())}; the loud client peaked at ${most} bytes`)
  t.ok(most <= 8192, `one client's kept bytes stay within its share (${most})`)
  t.ok(quiet > 0 && cache.clientBytes(clientKey('default', 'quiet')) === quiet, 'the quiet client kept its result')
  t.ok(cache.stats().bytes <= 8192 + quiet)
  t.equal(cache.stats().held, 0, 'nothing left pending')
})

/**
 * A filter in front of the emulator, as a WAF would be: a request body with
 * `<script` is answered `status` with `text`; anything else goes through.
 */
async function filtered (t: Test, emulator: Emulator, status: number, text: string): Promise<string> {
  const target = new URL(emulator.origin)
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (body.includes('<script')) {
        res.writeHead(status, { 'content-type': 'text/plain' }).end(text)
        return
      }
      const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      up.on('error', () => { res.destroy() })
      up.end(body)
    })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => { server.close(resolve) })
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/chatapi`
}

for (const [status, text] of [[403, 'Forbidden'], [401, 'Unauthorized'], [404, `ChannelChat config not found for token ${TOKEN}`]] as const) {
  t.test(`one message refused upstream (${status} "${text.slice(0, 28)}") fails alone; every socket stays open`, async (t) => {
    const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500 })
    t.teardown(async () => { await emulator.close() })
    const url = await filtered(t, emulator, status, text)
    // The bridge reaches the emulator through the filter.
    const behind = Object.assign(Object.create(emulator) as Emulator, { url })
    const h = await startBridgeOn(t, behind, { REQUEST_TIMEOUT_MS: '2000' })
    const a = await h.client()
    const b = await h.client()
    const r = await a.request({ type: 'send', id: 'x', query: 'hi <script>alert(1)</script>' })
    t.match(r, { ok: false, error: { code: 'UPSTREAM_REJECTED', status } })
    t.notOk(JSON.stringify(r).includes(TOKEN), 'no token in the result')
    t.equal((await b.request({ type: 'send', id: 'y', query: 'hello' })).ok, true, 'the other client can still send')
    t.equal((await a.request({ type: 'send', id: 'z', query: 'hello again' })).ok, true, 'and so can the first')
    await until(() => h.app.bridge.sessions.socketsByChannel().get('default') === 2, 1000, 'both sockets open')
    t.equal(a.closeCode, undefined)
    t.equal(b.closeCode, undefined)
  })
}
