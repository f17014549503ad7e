import t from 'tap'
import { Redis } from 'ioredis'
import { fenceOf, FeedStreams, instanceOf } from '../../dist/cluster/feed-stream.js'
import { feedKeys } from '../../dist/cluster/keys.js'
import { Liveness } from '../../dist/cluster/liveness.js'
import { agentReplies, clusterEnv, connectTab, ownerOf, redisSkip, roundRobin, SHARED_REDIS, startClusterEmulator, startInstances, uniquePrefix, won, type Instance } from '../fixtures/cluster.js'

const skip = redisSkip()

const ev = (n: number): { ts: number, hash: string, json: string } => ({ ts: 1000 + n, hash: `hash-${String(n).padStart(11, '0')}`, json: `{"n":${n}}` })

t.test('an owner whose lease passed to another cannot append', { skip }, async (t) => {
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const prefix = uniquePrefix(t, SHARED_REDIS)
  const streams = new FeedStreams(redis, { leaseMs: 300, maxLen: 100, maxBytes: 1_048_576, ttlMs: 10_000 })
  const k = feedKeys(prefix, { channel: 'default', clientId: 'c1', cid: 'tab', all: true })

  const a = won(await streams.acquire(k, 'instance-a'))
  t.equal(instanceOf(a.token), 'instance-a', 'the first instance takes the lease, and its token names it')
  t.same(await streams.acquire(k, 'instance-b'), { won: false, holder: a.token }, 'a second cannot while it is held, and learns who holds it')
  t.type(await streams.publish(k, a.token, undefined, [ev(1)]), 'string', 'the owner appends')

  // A stalls past its alive key (it never set one here): B bids for A's token and takes over from the last event in the stream.
  const b = won(await streams.acquire(k, 'instance-b', a.token))
  t.ok(b.replaced, 'another instance takes the lease of the dead one')
  t.match(b.last, { ts: 1001, hash: ev(1).hash }, 'and learns where the stream ends')
  t.equal(await streams.publish(k, a.token, { ts: 1001, hash: ev(1).hash }, [ev(2)]), undefined, 'the stalled owner is fenced out')
  t.equal(await streams.renew(k, a.token), 'taken', 'and learns that its lease is gone')
  t.same(await streams.acquire(k, 'instance-a', a.token), { won: false, holder: b.token }, 'nor can it take the lease back under its old number')
  t.type(await streams.publish(k, b.token, { ts: 1001, hash: ev(1).hash }, [ev(2)]), 'string', 'the new owner appends')
  const rows = await redis.xrange(k.stream, '-', '+')
  t.same(rows.map(([, f]) => f[f.indexOf('j') + 1]), ['{"n":1}', '{"n":2}'], 'each event once, in order')
  t.ok(fenceOf(b.token) > fenceOf(a.token), 'each lease has its own, greater, fencing number')
  t.equal(await streams.renew(k, b.token), 'renewed', 'the owner keeps its keys')
  t.ok(await redis.pttl(k.lease) > 10_000, 'a lease key outlives REDIS_LEASE_MS by far: its validity is its instance\'s alive key')
})

t.test('an owner whose alive key lapsed takes its lease again first, and a bid on the old number fails', { skip }, async (t) => {
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const prefix = uniquePrefix(t, SHARED_REDIS)
  const streams = new FeedStreams(redis, { leaseMs: 300, maxLen: 100, maxBytes: 1_048_576, ttlMs: 10_000 })
  const k = feedKeys(prefix, { channel: 'default', clientId: 'c2', cid: 'tab', all: true })
  const alive = new Liveness(redis, prefix, 'instance-a', 300)
  const watcher = new Liveness(redis, prefix, 'instance-b', 300)

  t.equal(await alive.renew(), true, 'the first renewal sets the alive key, and says it was not there')
  t.equal(await alive.renew(), false, 'the next ones find it')
  const a = won(await streams.acquire(k, 'instance-a'))
  t.same(await watcher.dead(['instance-a', 'instance-c']), new Set(['instance-c']), 'an instance without an alive key counts as dead')

  // A stalls past its lease: B sees it dead, but A comes back and takes its lease again before B's bid lands.
  while ((await watcher.dead(['instance-a'])).size === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(await alive.renew(), true, 'the renewal after the stall says the key had lapsed')
  const again = won(await streams.acquire(k, 'instance-a', a.token))
  t.ok(again.replaced && fenceOf(again.token) > fenceOf(a.token), 'the owner takes its lease again under a new number')
  t.same(await streams.acquire(k, 'instance-b', a.token), { won: false, holder: again.token }, 'the bid on the old number fails, and names the holder')
  t.equal(await streams.publish(k, a.token, undefined, [ev(1)]), undefined, 'an append under the old number is fenced out')
  t.type(await streams.publish(k, again.token, undefined, [ev(1)]), 'string', 'one under the new number goes in')
  await alive.end()
  t.same(await watcher.dead(['instance-a']), new Set(['instance-a']), 'an instance that stops removes its key')
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
