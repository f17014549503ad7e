import t from 'tap'
import { agentReplies, connectTab, redisSkip, roundRobin, startClusterEmulator, startInstances, startSentinelSet } from '../fixtures/cluster.js'

t.test('through Sentinel: the Redis master dies, the replica is promoted, and the bridges carry on', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const set = await startSentinelSet(t)
  const env = {
    upstream: emulator.url,
    redisUrl: `redis://${set.name}`,
    prefix: 'sentinel-test:',
    env: { REDIS_OPTIONS: JSON.stringify({ sentinels: [{ host: '127.0.0.1', port: set.sentinelPort }], name: set.name }) }
  }
  const instances = await startInstances(t, env, 3)
  const { first, visitors, clientId } = await connectTab(t, emulator, 3, roundRobin(instances))

  const texts: string[] = []
  const publish = agentReplies(emulator, clientId, texts)
  await publish(20, 'before')
  const marks = instances.map((i) => i.logs.length)
  set.killMaster()
  const killedAt = Date.now()
  await publish(40, 'failover')
  await Promise.all(instances.map(async (i, k) => await i.log((l) => l.msg === 'Redis is available' && i.logs.indexOf(l) >= (marks[k] as number), 30_000)))
  t.comment(`every instance had Redis back ${Date.now() - killedAt} ms after the master died`)
  await publish(20, 'after')
  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))
  for (const [i, v] of visitors.entries()) {
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: all ${texts.length} events once`)
    t.equal(v.reconnects, 0, `socket ${i} stayed open`)
  }
  t.same(await Promise.all(instances.map(async (i) => await i.readyz())), [200, 200, 200], 'every instance is ready again')
  const r = await first.socket!.request({ type: 'send', id: 'after-failover', query: 'still there?' })
  t.equal(r.ok, true, 'requests work on the new master')
})
