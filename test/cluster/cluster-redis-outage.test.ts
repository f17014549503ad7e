import t from 'tap'
import { Redis } from 'ioredis'
import { TOKEN } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { agentReplies, clusterEnv, connectTab, freePort, ownerOf, redisSkip, RedisServer, startClusterEmulator, startInstance, startInstances, startRedis, Visitor, type Instance } from '../fixtures/cluster.js'
import { TestClient } from '../fixtures/ws-client.js'

t.test('Redis stops and starts again (empty) during traffic: open sockets stay, nothing lost or doubled, full recovery', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = await startRedis(t)
  const instances = await startInstances(t, clusterEnv(t, emulator, redis.url), 3)
  const { first, visitors, clientId } = await connectTab(t, emulator, 6, (i) => instances[i % 3] as Instance)
  const owner = await ownerOf(instances) as Instance
  const onOwner = visitors.filter((v) => v.instance === owner)

  const texts: string[] = []
  const publish = agentReplies(emulator, clientId, texts)
  const before = await publish(20, 'before')
  // Every socket has read what was in Redis: the polling instance can then go on handing its own sockets
  // what it polls without a gap (a socket behind the stream waits for Redis, or it would miss what is there).
  await Promise.all(visitors.map(async (v) => { await v.sees(before) }))

  const marks = instances.map((i) => i.logs.length)
  await redis.stop()
  await Promise.all(instances.map(async (i) => await i.log((l) => l.msg.startsWith('Redis is unavailable'))))
  t.same(await Promise.all(instances.map(async (i) => await i.readyz())), [503, 503, 503], '/readyz is 503 everywhere')
  t.same(await Promise.all(instances.map(async (i) => await i.metric('bridge_redis_up'))), [0, 0, 0], 'bridge_redis_up is 0')
  await t.rejects(new TestClient(instances[1]!.url).open(), /503/, 'a new socket is refused')
  const during = await publish(20, 'during')
  // The polling instance's own sockets keep getting events; the others get them when Redis is back.
  await Promise.all(onOwner.map(async (v) => { await v.sees(during) }))
  t.pass(`the ${onOwner.length} sockets on the polling instance got the events sent during the outage`)
  const failed = await first.socket!.request({ type: 'send', id: 'during-outage', query: 'anyone?' })
  t.match(failed, { ok: false, error: { code: 'UPSTREAM_UNAVAILABLE' } }, 'a request fails with a code that says resend later')

  await redis.start()
  await Promise.all(instances.map(async (i, k) => await i.log((l) => l.msg === 'Redis is available' && i.logs.indexOf(l) >= (marks[k] as number))))
  t.same(await Promise.all(instances.map(async (i) => await i.readyz())), [200, 200, 200], '/readyz is 200 again')
  await publish(20, 'after')

  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))
  for (const [i, v] of visitors.entries()) {
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: all ${texts.length} events once`)
    t.equal(v.reconnects, 0, `socket ${i} stayed open`)
  }
  first.socket!.send({ type: 'send', id: 'during-outage', query: 'anyone?' })
  const again = await first.socket!.upcoming((f) => f.type === 'result' && f.id === 'during-outage')
  t.equal(again.ok, true, 'the resend runs once Redis is back')
  t.same(await Promise.all(instances.map(async (i) => await i.metric('bridge_cluster_polls_owned'))).then((o) => o.reduce((a, b) => a + b, 0)), 1, 'one instance polls again')
  t.ok(await new TestClient(instances[1]!.url).open().then((c) => { c.ws.terminate(); return true }), 'new sockets are taken again')
})

t.test('an instance started while Redis is down waits, not ready, and serves once Redis comes', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = new RedisServer(await freePort())
  t.teardown(async () => { await redis.stop() })
  const inst = await startInstance(t, clusterEnv(t, emulator, redis.url))
  const warned = await inst.log((l) => l.msg.startsWith('Redis does not answer'))
  t.match(warned, { level: 40, redis: redis.url }, 'the log says why it is not ready, and where Redis should be')
  t.equal(await inst.readyz(), 503, 'not ready')
  await redis.start()
  await inst.log((l) => l.msg === 'Redis is available')
  t.equal(await inst.readyz(), 200, 'ready once Redis answers')
  const v = new Visitor('tab', () => inst)
  t.teardown(() => { v.stop() })
  await v.connect()
  await pollsHeld(emulator, { clientId: v.clientId as string, cid: 'tab' }, 1, 10_000)
  emulator.agentReply(TOKEN, v.clientId as string, 'hello')
  await v.sees(['hello'])
  t.pass('events flow')
})

t.test('a Redis that stalls (CLIENT PAUSE) longer than REDIS_TIMEOUT_MS counts as down, then recovers; nothing lost or doubled', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = await startRedis(t)
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  const instances = await startInstances(t, clusterEnv(t, emulator, redis.url), 2)
  const { visitors, clientId } = await connectTab(t, emulator, 2, (i) => instances[i] as Instance)

  const texts: string[] = []
  const publish = agentReplies(emulator, clientId, texts)
  await publish(10, 'before')
  const marks = instances.map((i) => i.logs.length)
  await admin.call('CLIENT', 'PAUSE', '2500', 'ALL')
  await publish(30, 'stalled')
  await Promise.all(instances.map(async (i) => await i.log((l) => l.msg.startsWith('Redis is unavailable') && i.logs.indexOf(l) >= (marks[instances.indexOf(i)] as number))))
  t.pass('both instances noticed')
  await Promise.all(instances.map(async (i, k) => await i.log((l) => l.msg === 'Redis is available' && i.logs.indexOf(l) >= (marks[k] as number))))
  await publish(10, 'after')
  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))
  for (const v of visitors) {
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `${v.instance?.name ?? ''}: all ${texts.length} events once`)
    t.equal(v.reconnects, 0, 'the socket stayed open')
  }
})
