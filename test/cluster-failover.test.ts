import t from 'tap'
import { startEmulator } from '../src/emulator/index.js'
import { TOKEN, until } from './fixtures/bridge.js'
import { ownerOf, redisSkip, roundRobin, SHARED_REDIS, startInstance, uniquePrefix, Visitor, type Instance } from './fixtures/cluster.js'

t.test('kill -9 of the polling instance while events flow: another takes over, nothing lost or doubled', { skip: redisSkip() }, async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 1000 })
  t.teardown(async () => { await emulator.close() })
  const env = { upstream: emulator.url, redisUrl: SHARED_REDIS, prefix: uniquePrefix(t, SHARED_REDIS) }
  const instances: Instance[] = await Promise.all([0, 1, 2].map(async () => await startInstance(t, env)))
  const pick = roundRobin(instances)

  const first = new Visitor('tab', pick)
  await first.connect()
  const auth = { ticket: first.ticket as string, clientId: first.clientId as string }
  const visitors = [first]
  for (let i = 1; i < 6; i++) {
    const v = new Visitor('tab', pick, auth)
    await v.connect()
    visitors.push(v)
  }
  t.teardown(() => { for (const v of visitors) v.stop() })
  const clientId = auth.clientId
  await until(() => emulator.activePolls(TOKEN, clientId, 'tab') === 1, 10_000, 'the upstream poll')
  const owner = await ownerOf(instances)
  if (owner === undefined) throw new Error('no instance owns the feed')

  const texts = Array.from({ length: 150 }, (_, i) => `ev-${i}`)
  const sentAt = new Map<string, number>()
  let killedAt = 0
  for (const [i, text] of texts.entries()) {
    if (i === 50) {
      owner.child.kill('SIGKILL')
      killedAt = Date.now()
    }
    sentAt.set(text, Date.now())
    emulator.agentReply(TOKEN, clientId, text)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))

  for (const [i, v] of visitors.entries()) {
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: every event once (${v.reconnects} reconnects)`)
    t.same(v.gaps, [], `socket ${i}: every resume continued`)
  }
  const survivors = instances.filter((i) => i !== owner)
  const next = await ownerOf(survivors)
  t.ok(next !== undefined, `${next?.name ?? 'nobody'} polls now`)

  // The takeover: the longest wait of an event sent after the kill, on a socket that never moved.
  const stayed = visitors.filter((v) => v.reconnects === 0)
  let takeover = 0
  for (const text of texts.slice(50)) {
    for (const v of stayed) takeover = Math.max(takeover, (v.arrivals.get(text) ?? 0) - (sentAt.get(text) ?? 0))
  }
  t.comment(`takeover: events waited at most ${takeover} ms after the kill at ${killedAt - (sentAt.get('ev-0') ?? 0)} ms (REDIS_LEASE_MS=1000)`)
  t.ok(takeover < 4000, 'taken over within a few seconds')
})
