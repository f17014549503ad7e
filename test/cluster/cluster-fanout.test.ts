import t from 'tap'
import { TOKEN } from '../fixtures/bridge.js'
import { clusterEnv, connectTab, redisSkip, startClusterEmulator, startInstances, type Instance } from '../fixtures/cluster.js'

t.test('three instances share one upstream poll per connection; every socket gets every event once', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator), 3)

  // Two sockets of the same tab (same clientId and cid) on each instance.
  const { first, visitors, clientId } = await connectTab(t, emulator, 6, (i) => instances[i % 3] as Instance)

  const texts = Array.from({ length: 60 }, (_, i) => `fan-${i}`)
  for (const [i, text] of texts.entries()) {
    emulator.agentReply(TOKEN, clientId, text)
    // Some in bursts, some one by one.
    if (i % 10 === 9) await first.sees([text])
  }
  await Promise.all(visitors.map(async (v) => { await v.sees(texts) }))
  for (const [i, v] of visitors.entries()) t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i} on ${v.instance?.name ?? ''}: every event once`)
  t.equal(emulator.maxActivePolls(TOKEN, clientId, 'tab'), 1, 'the upstream never saw two polls at once for the connection')
  const owners = await Promise.all(instances.map(async (inst) => await inst.metric('bridge_cluster_polls_owned')))
  t.same(owners.reduce((a, b) => a + b, 0), 1, 'one instance polls for all')
  const ups = await Promise.all(instances.map(async (inst) => await inst.metric('bridge_redis_up')))
  t.same(ups, [1, 1, 1], 'bridge_redis_up is 1 everywhere')
})
