import t from 'tap'
import type { WelcomeFrame } from '../../packages/client/src/index.js'
import { startBridge } from '../fixtures/bridge.js'

/** Every field of the SDK's WelcomeFrame: the compiler insists on each, and on no other. */
const WELCOME_FIELDS: Record<keyof WelcomeFrame, true> = {
  type: true, clientId: true, cid: true, ticket: true, resumed: true, gap: true, heartbeatMs: true, channel: true, cursor: true, expiresAt: true
}

t.test('the welcome is the SDK\'s WelcomeFrame', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  t.type(a.welcome.channel, 'string', 'it always names the channel')
  t.same(Object.keys(a.welcome).filter((k) => !(k in WELCOME_FIELDS)), [], 'and has no field the type lacks')
})

t.test('bad frames get BAD_REQUEST and the socket stays open', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  a.send('{not json')
  const error = await a.upcoming((f) => f.type === 'error')
  t.match(error, { code: 'BAD_REQUEST', message: /JSON/ })
  t.notOk('id' in error, 'an error frame carries no id')
  a.send({ type: 'teleport', id: 'x' })
  t.match(await a.next((f) => f.type === 'result' && f.id === 'x'), { ok: false, error: { code: 'BAD_REQUEST', message: /unknown type/ } })
  a.send({ type: 'send', id: 'y' })
  t.match(await a.next((f) => f.type === 'result' && f.id === 'y'), { ok: false, error: { code: 'BAD_REQUEST', message: /query.*event/ } })
  a.send({ type: 'history', id: 'z', limit: 'ten' })
  t.match(await a.next((f) => f.type === 'result' && f.id === 'z'), { ok: false, error: { code: 'BAD_REQUEST', message: /limit/ } })
  a.send([1, 2])
  t.match(await a.upcoming((f) => f.type === 'error'), { code: 'BAD_REQUEST' })
  let deep: unknown = 1
  for (let i = 0; i < 2000; i++) deep = [deep]
  a.send({ type: 'setState', id: 'deep', state: deep })
  t.match(await a.next((f) => f.type === 'result' && f.id === 'deep'), { ok: false, error: { code: 'BAD_REQUEST', message: /nested/ } })
  const ok = await a.request({ type: 'getState', id: 'still-here' })
  t.equal(ok.ok, true, 'the socket still works')
})

t.test('a request before hello gets NOT_READY; a second hello is refused', async (t) => {
  const h = await startBridge(t)
  const a = await h.connect()
  a.send({ type: 'send', id: 'early', query: 'hi' })
  t.match(await a.next((f) => f.type === 'result' && f.id === 'early'), { ok: false, error: { code: 'NOT_READY' } })
  await a.hello()
  a.send({ type: 'hello' })
  t.match(await a.upcoming((f) => f.type === 'error'), { code: 'BAD_REQUEST', message: /hello/ })
})

t.test('a binary frame closes with 1003, an oversized one with 1009; others keep working', async (t) => {
  const h = await startBridge(t, { MAX_FRAME_BYTES: '2048' })
  const bystander = await h.client()
  const a = await h.client()
  a.ws.send(Buffer.from([1, 2, 3]), { binary: true })
  t.equal(await a.closed(), 1003)
  const b = await h.client()
  b.send({ type: 'send', id: 'big', query: 'x'.repeat(4000) })
  t.equal(await b.closed(), 1009)
  const r = await bystander.request({ type: 'send', id: 'fine', query: 'still there?' })
  t.equal(r.ok, true)
})

t.test('a stream of bad frames closes with 4429', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  for (let i = 0; i < 12; i++) a.send('nope')
  t.equal(await a.closed(), 4429)
})

t.test('data-frame ping is answered; the server pings at the heartbeat', async (t) => {
  const h = await startBridge(t, { HEARTBEAT_MS: '150' })
  const a = await h.client()
  t.equal(a.welcome.heartbeatMs, 150)
  a.send({ type: 'ping' })
  await a.next((f) => f.type === 'pong')
  await a.upcoming((f) => f.type === 'ping')
  t.pass('server data-frame ping seen')
})

t.test('the heartbeat pings sockets spread over its period, each once per period', async (t) => {
  const h = await startBridge(t, { HEARTBEAT_MS: '500' })
  const sockets = await Promise.all(Array.from({ length: 20 }, async () => await h.client()))
  // Each socket's first two pings, as seen here.
  const pings = await Promise.all(sockets.map(async (c) => {
    await c.upcoming((f) => f.type === 'ping', 3000)
    const first = performance.now()
    await c.upcoming((f) => f.type === 'ping', 3000)
    return { first, second: performance.now() }
  }))
  const firsts = pings.map((p) => p.first)
  const spread = Math.max(...firsts) - Math.min(...firsts)
  t.ok(spread >= 200, `first pings spread over ${Math.round(spread)} ms of the 500 ms period, not one burst`)
  for (const p of pings) t.ok(p.second - p.first > 250 && p.second - p.first < 1000, `pinged again after ${Math.round(p.second - p.first)} ms`)
})

t.test('a socket that stops answering pings is ended', async (t) => {
  const h = await startBridge(t, { HEARTBEAT_MS: '100' })
  const a = await h.client()
  // Stop the client's automatic pong replies, as a dead peer would.
  ;(a.ws as unknown as { pong: () => void }).pong = () => {}
  const code = await a.closed(10_000)
  t.ok(code === 1006 || code === 1000 || code > 0, `socket ended (${code})`)
})

t.test('an unknown channel closes the socket with 4404', async (t) => {
  const h = await startBridge(t)
  const c = await h.connect({ query: '?channel=nope' })
  t.equal(await c.closed(), 4404)
  t.equal(c.frames.length, 0, 'nothing was said on it')
})
