import t from 'tap'
import { clusterEnv, redisSkip, socketOpener, startClusterEmulator, startInstances, type Instance } from '../fixtures/cluster.js'

t.test('request rules hold across instances', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator), 3)
  const open = socketOpener(t)
  const [one, two, three] = instances as [Instance, Instance, Instance]
  const a = await open(one, { cid: 'tab-1' })
  const ticket = a.welcome.ticket as string
  const b = await open(two, { auth: ticket, cid: 'tab-2' })
  const c = await open(three, { auth: ticket, cid: 'tab-3' })
  const sends = (): Array<{ query: string, at: number }> => emulator.requests
    .filter((r) => r.route === 'send')
    .map((r) => ({ query: (r.body as { query: string }).query, at: r.at }))

  await t.test('a resent id on another instance: the same result, one upstream call', async (t) => {
    const first = await a.request({ type: 'send', id: 'once', query: 'hello once' })
    t.equal(first.ok, true)
    const again = await b.request({ type: 'send', id: 'once', query: 'hello once' })
    t.same(again, first, 'the same result')
    t.equal(sends().filter((s) => s.query === 'hello once').length, 1, 'one upstream call')
  })

  await t.test('a resend that arrives while the first still runs waits for it', async (t) => {
    emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 600, count: 1 })
    const arrived = new Promise<void>((resolve) => {
      emulator.on('request', (r) => { if (r.route === 'send') resolve() })
    })
    const firstP = a.request({ type: 'send', id: 'slow', query: 'slow one' })
    await arrived
    const [first, again] = await Promise.all([firstP, c.request({ type: 'send', id: 'slow', query: 'slow one' })])
    t.equal(first.ok, true)
    t.same(again, first, 'the waiter on another instance gets the same result')
    t.equal(sends().filter((s) => s.query === 'slow one').length, 1, 'one upstream call')
  })

  await t.test('sends of one client through three instances reach the upstream one at a time, in order', async (t) => {
    emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 40, count: 9 })
    const before = sends().length
    const by = new Map([[a, ['a1', 'a2', 'a3']], [b, ['b1', 'b2', 'b3']], [c, ['c1', 'c2', 'c3']]])
    const results = await Promise.all([...by].flatMap(([sock, ids]) => ids.map(async (id) => await sock.request({ type: 'send', id, query: `q-${id}` }))))
    t.ok(results.every((r) => r.ok === true), 'all answered')
    const seen = sends().slice(before)
    t.equal(seen.length, 9)
    for (const ids of by.values()) {
      t.same(seen.map((s) => s.query).filter((q) => ids.some((id) => q === `q-${id}`)), ids.map((id) => `q-${id}`), `${ids.join(', ')} in order`)
    }
    for (let i = 1; i < seen.length; i++) {
      t.ok((seen[i] as { at: number }).at >= (seen[i - 1] as { at: number }).at + 35, `send ${i + 1} started after send ${i} was answered`)
    }
  })

  await t.test('a send queued behind one whose instance died goes on after about a lease', async (t) => {
    emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 10_000, count: 1 })
    const arrived = new Promise<void>((resolve) => {
      emulator.on('request', (r) => { if (r.route === 'send') resolve() })
    })
    a.send({ type: 'send', id: 'stuck', query: 'never answered in time' })
    await arrived
    const queued = b.request({ type: 'send', id: 'behind', query: 'behind the stuck one' })
    one.child.kill('SIGKILL')
    const killedAt = Date.now()
    const r = await queued
    t.equal(r.ok, true, 'answered')
    const waited = Date.now() - killedAt
    t.comment(`the lane moved on ${waited} ms after the kill (REDIS_LEASE_MS=1000)`)
    t.ok(waited < 5000, 'within a few seconds')
  })
})
