import t from 'tap'
import { startBridge } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'

t.test('closing the app closes sockets with 1012 and leaves no upstream poll', async (t) => {
  const h = await startBridge(t)
  const clients = await Promise.all([1, 2, 3].map(async (i) => await h.client({ cid: `c${i}` })))
  await pollsHeld(h.emulator, clients.map((c) => ({ clientId: c.welcome.clientId as string })), 1)
  const ready = await fetch(`${h.httpUrl}/readyz`)
  t.equal(ready.status, 200)
  const closing = h.app.close()
  const codes = await Promise.all(clients.map(async (c) => await c.closed()))
  t.same(codes, [1012, 1012, 1012])
  await closing
  await pollsHeld(h.emulator, clients.map((c) => ({ clientId: c.welcome.clientId as string })), 0)
  t.pass('no poll left running')
})

t.test('health endpoints', async (t) => {
  const h = await startBridge(t)
  const live = await fetch(`${h.httpUrl}/healthz`)
  t.equal(live.status, 200)
  const ready = await (await fetch(`${h.httpUrl}/readyz`)).json() as Record<string, unknown>
  t.equal(ready.status, 'ready')
})
