import t from 'tap'
import { TOKEN } from '../fixtures/bridge.js'
import { connectTab, redisSkip, startClusterEmulator, startInstances, startRedisCluster, type Instance, type Visitor } from '../fixtures/cluster.js'

t.test('on a Redis Cluster: one poll per connection, every event once, resends and send order across instances', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const seeds = await startRedisCluster(t)
  // Two seed nodes are enough: the client learns the rest of the cluster from them.
  const env = { upstream: emulator.url, redisUrl: seeds.split(',').slice(0, 2).join(','), prefix: 'cluster-test:', env: { REDIS_CLUSTER: 'true' } }
  const instances = await startInstances(t, env, 3)
  t.same(await Promise.all(instances.map(async (i) => await i.readyz())), [200, 200, 200], 'every instance is ready')

  const { visitors, clientId } = await connectTab(t, emulator, 3, (i) => instances[i] as Instance)
  const texts = Array.from({ length: 30 }, (_, i) => `rc-${i}`)
  for (const text of texts) emulator.agentReply(TOKEN, clientId, text)
  await Promise.all(visitors.map(async (v) => { await v.sees(texts) }))
  for (const [i, v] of visitors.entries()) t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: every event once`)
  t.equal(emulator.maxActivePolls(TOKEN, clientId, 'tab'), 1, 'one upstream poll at a time')

  const [a, b] = visitors.map((v) => v.socket) as [NonNullable<Visitor['socket']>, NonNullable<Visitor['socket']>]
  const once = await a.request({ type: 'send', id: 'once', query: 'hi' })
  t.same(await b.request({ type: 'send', id: 'once', query: 'hi' }), once, 'a resent id on another instance: the same result')
  emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 40, count: 4 })
  const before = emulator.requests.length
  await Promise.all([
    a.request({ type: 'send', id: 'a1', query: 'a1' }), a.request({ type: 'send', id: 'a2', query: 'a2' }),
    b.request({ type: 'send', id: 'b1', query: 'b1' }), b.request({ type: 'send', id: 'b2', query: 'b2' })
  ])
  const sends = emulator.requests.slice(before).filter((r) => r.route === 'send')
  t.equal(emulator.requests.filter((r) => r.route === 'send' && (r.body as { query: string }).query === 'hi').length, 1, 'one upstream call for the resent id')
  t.equal(sends.length, 4)
  for (let i = 1; i < sends.length; i++) t.ok(sends[i]!.at >= sends[i - 1]!.at + 35, `send ${i + 1} started after send ${i} was answered`)
  const order = sends.map((r) => (r.body as { query: string }).query)
  t.ok(order.indexOf('a1') < order.indexOf('a2') && order.indexOf('b1') < order.indexOf('b2'), `each socket's order holds (${order.join(', ')})`)
})
