import t from 'tap'
import { startEmulator } from '../src/emulator/index.js'
import { TOKEN, until } from './fixtures/bridge.js'
import { redisSkip, SHARED_REDIS, startInstance, uniquePrefix, Visitor, type Instance } from './fixtures/cluster.js'

t.test('three instances share one upstream poll per connection; every socket gets every event once', { skip: redisSkip() }, async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 1000 })
  t.teardown(async () => { await emulator.close() })
  const env = { upstream: emulator.url, redisUrl: SHARED_REDIS, prefix: uniquePrefix(t, SHARED_REDIS) }
  const instances = await Promise.all([0, 1, 2].map(async () => await startInstance(t, env)))

  // Two sockets of the same tab (same clientId and cid) on each instance.
  const first = new Visitor('tab', () => instances[0] as Instance)
  await first.connect()
  const auth = { ticket: first.ticket as string, clientId: first.clientId as string }
  const visitors = [first]
  for (let i = 1; i < 6; i++) {
    const v = new Visitor('tab', () => instances[i % 3] as Instance, auth)
    await v.connect()
    visitors.push(v)
  }
  t.teardown(() => { for (const v of visitors) v.stop() })
  const clientId = auth.clientId
  await until(() => emulator.activePolls(TOKEN, clientId, 'tab') === 1, 10_000, 'the upstream poll')

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
