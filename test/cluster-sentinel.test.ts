import t from 'tap'
import { startEmulator } from '../src/emulator/index.js'
import { TOKEN, until } from './fixtures/bridge.js'
import { redisSkip, roundRobin, startInstance, startSentinelSet, Visitor, type Instance } from './fixtures/cluster.js'

t.test('through Sentinel: the Redis master dies, the replica is promoted, and the bridges carry on', { skip: redisSkip() }, async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 1000 })
  t.teardown(async () => { await emulator.close() })
  const set = await startSentinelSet(t)
  const env = {
    upstream: emulator.url,
    redisUrl: `redis://${set.name}`,
    prefix: 'sentinel-test:',
    env: { REDIS_OPTIONS: JSON.stringify({ sentinels: [{ host: '127.0.0.1', port: set.sentinelPort }], name: set.name }) }
  }
  const instances: Instance[] = await Promise.all([0, 1, 2].map(async () => await startInstance(t, env)))
  const pick = roundRobin(instances)
  const first = new Visitor('tab', pick)
  await first.connect()
  const auth = { ticket: first.ticket as string, clientId: first.clientId as string }
  const visitors = [first]
  for (let i = 1; i < 3; i++) {
    const v = new Visitor('tab', pick, auth)
    await v.connect()
    visitors.push(v)
  }
  t.teardown(() => { for (const v of visitors) v.stop() })
  const clientId = auth.clientId
  await until(() => emulator.activePolls(TOKEN, clientId, 'tab') === 1, 10_000, 'the upstream poll')

  const texts: string[] = []
  const publish = async (n: number, label: string): Promise<void> => {
    for (let i = 0; i < n; i++) {
      texts.push(`${label}-${i}`)
      emulator.agentReply(TOKEN, clientId, `${label}-${i}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
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
