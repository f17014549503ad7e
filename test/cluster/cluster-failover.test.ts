import t from 'tap'
import { TOKEN } from '../fixtures/bridge.js'
import { clusterEnv, connectTab, ownerOf, redisSkip, roundRobin, startClusterEmulator, startInstances } from '../fixtures/cluster.js'

t.test('kill -9 of the polling instance while events flow: another takes over, nothing lost or doubled', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator), 3)
  const { visitors, clientId } = await connectTab(t, emulator, 6, roundRobin(instances))
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
