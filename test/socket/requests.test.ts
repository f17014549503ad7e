import t from 'tap'
import { startBridge, TOKEN } from '../fixtures/bridge.js'

t.test('every request type reaches its upstream path with the session clientId', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab-9' })
  const clientId = a.welcome.clientId as string
  const seen: Array<{ route: string, clientId?: string, path: string }> = []
  h.emulator.on('request', (r) => { if (r.route !== 'events') seen.push(r) })

  const sent = await a.request({ type: 'send', id: '1', query: 'hello' })
  t.equal(sent.ok, true)
  const result = sent.result as Record<string, unknown>
  t.equal(result.clientId, clientId)
  t.equal(result.cid, 'tab-9', 'cid goes upstream')
  t.equal(result.token, undefined, 'token removed from the result')
  t.notOk(JSON.stringify(sent).includes(TOKEN))
  const questionId = result.questionId as string

  const ev = await a.request({ type: 'send', id: '2', event: 'fileEvent', data: { name: 'a.txt' } })
  t.equal(ev.ok, true)
  const asy = await a.request({ type: 'sendAsync', id: '3', query: 'later' })
  t.type((asy.result as { questionId: string }).questionId, 'string')
  const hist = await a.request({ type: 'history', id: '4', limit: 10 })
  t.ok(Array.isArray((hist.result as { messages: unknown[] }).messages))
  t.equal((await a.request({ type: 'setState', id: '5', state: { page: 'cart', n: 2 } })).ok, true)
  t.same((await a.request({ type: 'getState', id: '6' })).result, { page: 'cart', n: 2 })
  t.equal((await a.request({ type: 'setStatus', id: '7', questionId, status: 'READ' })).ok, true)
  t.match((await a.request({ type: 'getStatus', id: '8', questionId })).result, { status: 'READ' })
  t.equal((await a.request({ type: 'setStatuses', id: '9', statuses: [{ questionId, status: 'DELIVERED' }] })).ok, true)
  t.type(((await a.request({ type: 'unreadCount', id: '10' })).result as { count: number }).count, 'number')

  const routes = seen.map((r) => r.route)
  t.same(routes, ['send', 'send', 'sendAsync', 'history', 'setState', 'getState', 'setStatus', 'getStatus', 'setStatuses', 'unreadCount'])
  for (const r of seen) t.equal(r.clientId, clientId, `${r.route} carries the session clientId`)
})

t.test('a clientId in a frame is refused; the session clientId cannot be overridden', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  const r = await a.request({ type: 'history', id: 'h', clientId: 'victim' })
  t.equal(r.ok, false)
  t.match(r.error, { code: 'BAD_REQUEST', message: /clientId/ })
})

t.test('an upstream rejection carries status and code but no token', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  const r = await a.request({ type: 'getStatus', id: 's', questionId: 'no-such-message' })
  t.equal(r.ok, false)
  t.match(r.error, { code: 'UPSTREAM_REJECTED', status: 404 })
  t.notOk(JSON.stringify(r).includes(TOKEN))
})

t.test('a resent id is answered again without a second upstream call', async (t) => {
  const h = await startBridge(t)
  const a = await h.client()
  const first = await a.request({ type: 'send', id: 'once', query: 'hi' })
  const sends = (): number => h.emulator.requests.filter((r) => r.route === 'send').length
  t.equal(sends(), 1)
  // A new socket of the same client (a reconnect) resends the same id.
  const b = await h.client({ auth: a.welcome.ticket })
  const again = await b.request({ type: 'send', id: 'once', query: 'hi' })
  t.same(again, first, 'the same result')
  t.equal(sends(), 1, 'no second upstream call')
  // Another client may use the same id: ids are per client.
  const other = await h.client()
  await other.request({ type: 'send', id: 'once', query: 'hi' })
  t.equal(sends(), 2)
})

t.test('sends of one client reach the upstream one at a time, in order', async (t) => {
  const h = await startBridge(t)
  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 30, count: 5 })
  const a = await h.client({ cid: 'one' })
  const b = await h.client({ auth: a.welcome.ticket, cid: 'two' })
  const order: string[] = []
  h.emulator.on('request', (r) => {
    if (r.route !== 'send') return
    order.push((r.body as { query: string }).query)
  })
  const ids = ['a', 'b', 'c', 'd', 'e']
  // All five are outstanding at once, three on one socket and two on another.
  const all = await Promise.all(ids.map(async (id, i) => await (i % 2 === 0 ? a : b).request({ type: 'send', id, query: `q-${id}` })))
  t.ok(all.every((r) => r.ok === true))
  // Frames of two sockets have no order between them; each socket's own order holds.
  t.same(order.filter((q) => ['q-a', 'q-c', 'q-e'].includes(q)), ['q-a', 'q-c', 'q-e'], 'socket one in order')
  t.same(order.filter((q) => ['q-b', 'q-d'].includes(q)), ['q-b', 'q-d'], 'socket two in order')
  // With a delay of 30 ms each and one at a time, the upstream saw them serially:
  const sends = h.emulator.requests.filter((r) => r.route === 'send')
  for (let i = 1; i < sends.length; i++) t.ok(sends[i]!.at >= sends[i - 1]!.at + 25, 'the next send started after the previous answered')
})
