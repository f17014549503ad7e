import t from 'tap'
import { Redis } from 'ioredis'
import { clusterEnv, redisSkip, SHARED_REDIS, socketOpener, startClusterEmulator, startInstances, type Instance } from '../fixtures/cluster.js'

/** The bytes of every result kept under `prefix`, and how many there are. */
async function keptResults (redis: Redis, prefix: string): Promise<{ count: number, bytes: number }> {
  let cursor = '0'
  let count = 0
  let bytes = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}result:*`, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      const v = await redis.get(key)
      if (v?.startsWith('done:') !== true) continue
      count++
      bytes += Buffer.byteLength(v) - 5
    }
  } while (cursor !== '0')
  return { count, bytes }
}

t.test('the results one client keeps in Redis stay within RESULT_CACHE_CLIENT_BYTES, its oldest going first, and other clients keep theirs', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const env = clusterEnv(t, emulator, SHARED_REDIS, { RESULT_CACHE_CLIENT_BYTES: '4096' })
  const [one, two] = await startInstances(t, env, 2) as [Instance, Instance]
  const open = socketOpener(t)
  const calls = (query: string): number => emulator.requests.filter((r) => r.route === 'send' && (r.body as { query?: string }).query === query).length
  const query = (n: number): string => `q${n} ${'z'.repeat(200)}`

  const other = await open(one, { cid: 'tab' })
  const kept = await other.request({ type: 'send', id: 'theirs', query: 'another client' })
  t.equal(kept.ok, true)

  const a = await open(one, { cid: 'tab-1' })
  const b = await open(two, { auth: a.welcome.ticket as string, cid: 'tab-2' })
  const results = []
  for (let n = 1; n <= 8; n++) {
    const r = await a.request({ type: 'send', id: `s${n}`, query: query(n) })
    t.equal(r.ok, true)
    results.push(r)
  }
  const size = Buffer.byteLength(JSON.stringify(results[7]))
  const all = await keptResults(redis, env.prefix)
  // The other client's one result is counted too; this client's alone are within the budget.
  t.ok(all.bytes - Buffer.byteLength(JSON.stringify(kept)) <= 4096, `${all.bytes} bytes of results kept, of which this client's within 4096 (a result is ${size})`)
  t.ok(all.count < 9, `the oldest went: ${all.count} results kept of 9`)

  t.same(await b.request({ type: 'send', id: 's8', query: query(8) }), results[7], 'the newest is still there for a resend on the other instance')
  t.equal(calls(query(8)), 1, 'and is not sent again')
  const again = await b.request({ type: 'send', id: 's1', query: query(1) })
  t.equal(again.ok, true, 'a resend of one that went is answered')
  t.equal(calls(query(1)), 2, 'by running it again, as after RESULT_CACHE_MS')

  const theirs = await open(two, { auth: other.welcome.ticket as string, cid: 'tab-3' })
  t.same(await theirs.request({ type: 'send', id: 'theirs', query: 'another client' }), kept, 'the other client\'s result was not given up for this one\'s')
  t.equal(calls('another client'), 1)
})
