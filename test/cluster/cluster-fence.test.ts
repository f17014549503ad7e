import t from 'tap'
import { Redis } from 'ioredis'
import { FeedStreams } from '../../src/cluster/feed-stream.js'
import { feedKeys } from '../../src/cluster/keys.js'
import { agentReplies, clusterEnv, connectTab, ownerOf, redisSkip, roundRobin, SHARED_REDIS, startClusterEmulator, startInstances, uniquePrefix, type Instance } from '../fixtures/cluster.js'

const skip = redisSkip()

t.test('an owner whose lease passed to another cannot append', { skip }, async (t) => {
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const prefix = uniquePrefix(t, SHARED_REDIS)
  const streams = new FeedStreams(redis, { leaseMs: 300, maxLen: 100, ttlMs: 10_000 })
  const k = feedKeys(prefix, { channel: 'default', clientId: 'c1', cid: 'tab', all: true })
  const ev = (n: number): { ts: number, hash: string, json: string } => ({ ts: 1000 + n, hash: `hash-${String(n).padStart(11, '0')}`, json: `{"n":${n}}` })

  const a = await streams.acquire(k, 'instance-a')
  t.ok(a, 'the first instance takes the lease')
  t.equal(await streams.acquire(k, 'instance-b'), undefined, 'a second cannot while it is held')
  t.type(await streams.publish(k, a!.token, undefined, [ev(1)]), 'string', 'the owner appends')

  // A stalls past its lease; B takes over from the last event in the stream.
  // No event announces a lapse: look every 20 ms.
  while (await redis.exists(k.lease) === 1) await new Promise((resolve) => setTimeout(resolve, 20))
  const b = await streams.acquire(k, 'instance-b')
  t.ok(b, 'another instance takes the lapsed lease')
  t.match(b!.last, { ts: 1001, hash: ev(1).hash }, 'and learns where the stream ends')
  t.equal(await streams.publish(k, a!.token, { ts: 1001, hash: ev(1).hash }, [ev(2)]), undefined, 'the stalled owner is fenced out')
  t.equal(await streams.renew(k, a!.token), 'taken', 'and learns that its lease is gone')
  t.type(await streams.publish(k, b!.token, { ts: 1001, hash: ev(1).hash }, [ev(2)]), 'string', 'the new owner appends')
  const rows = await redis.xrange(k.stream, '-', '+')
  t.same(rows.map(([, f]) => f[f.indexOf('j') + 1]), ['{"n":1}', '{"n":2}'], 'each event once, in order')
  t.not(a!.token.split(':')[1], b!.token.split(':')[1], 'each lease has its own fencing number')
})

t.test('a polling instance frozen past its lease (SIGSTOP): another takes over; after SIGCONT nothing is doubled or lost', { skip }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator), 3)
  const { visitors, clientId } = await connectTab(t, emulator, 6, roundRobin(instances))
  const owner = await ownerOf(instances) as Instance
  t.teardown(() => { owner.child.kill('SIGCONT') })

  const texts: string[] = []
  const send = agentReplies(emulator, clientId, texts)
  await send(20, 'before')
  owner.child.kill('SIGSTOP')
  await send(40, 'frozen')
  const others = visitors.filter((v) => v.instance !== owner)
  await Promise.all(others.map(async (v) => { await v.sees(texts) }))
  t.pass('the sockets on the other instances got the events sent while the owner was frozen')
  owner.child.kill('SIGCONT')
  await send(20, 'after')

  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))
  for (const [i, v] of visitors.entries()) {
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}${v.instance === owner ? ' (on the frozen instance)' : ''}: every event once`)
  }
  const survivors = instances.filter((i) => i !== owner)
  t.ok(await ownerOf(survivors), 'the lease stayed with the instance that took over')
  t.equal(await owner.metric('bridge_cluster_polls_owned'), 0, 'the thawed instance polls no more')
})
