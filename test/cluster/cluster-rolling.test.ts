import t from 'tap'
import { TOKEN } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { clusterEnv, connectVisitors, redisSkip, roundRobin, startClusterEmulator, startInstance, startInstances, type Visitor } from '../fixtures/cluster.js'

t.test('a rolling restart of every instance while events flow: clients resume, nothing lost or doubled', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const env = clusterEnv(t, emulator)
  const instances = await startInstances(t, env, 3)
  const pick = roundRobin(instances)

  // Two visitors with two tabs each, spread over the instances.
  const visitors: Visitor[] = []
  const clients: string[] = []
  for (let c = 0; c < 2; c++) {
    const tabs = await connectVisitors(t, ['tab-a', 'tab-a', 'tab-b', 'tab-b'], pick)
    visitors.push(...tabs)
    clients.push(tabs[0]?.clientId as string)
  }
  for (const id of clients) {
    await pollsHeld(emulator, [{ clientId: id, cid: 'tab-a' }, { clientId: id, cid: 'tab-b' }], 1, 10_000)
  }

  const texts: string[] = []
  let producing = true
  const producer = (async () => {
    for (let i = 0; producing; i++) {
      const text = `roll-${i}`
      texts.push(text)
      for (const id of clients) emulator.agentReply(TOKEN, id, text)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  })()

  // Replace each instance in turn: the new one is ready before the old one drains.
  for (const old of [...instances]) {
    instances.push(await startInstance(t, env))
    t.equal(await old.terminate(), 0, `${old.name} drained and exited 0`)
  }
  producing = false
  await producer

  await Promise.all(visitors.map(async (v) => { await v.sees(texts, 30_000) }))
  let moved = 0
  for (const [i, v] of visitors.entries()) {
    moved += v.reconnects
    t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: all ${texts.length} events once`)
    t.same(v.gaps, [], `socket ${i}: every resume continued`)
  }
  t.ok(moved >= visitors.length, `every socket moved at least once (${moved} reconnects)`)
  t.comment(`upstream polls at once per connection, at most: ${clients.flatMap((id) => ['tab-a', 'tab-b'].map((cid) => emulator.maxActivePolls(TOKEN, id, cid))).join(', ')}`)
})
