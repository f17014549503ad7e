import t from 'tap'
import { startEmulator } from '../../dist/emulator/index.js'
import { TOKEN } from '../fixtures/bridge.js'
import { clusterEnv, connectVisitors, redisSkip, startInstances, type Instance } from '../fixtures/cluster.js'

// The cluster's owner polls through the same poller as a single instance: the same readings of the Chat API hold.
for (const profiles of [['no-hold'], ['late-stamps', 'exclusive-ts'], ['unscoped-cid', 'whole-seconds']] as const) {
  t.test(`two instances on ${profiles.join(',')}: every event once, and an idle connection costs about a poll a second`, { skip: redisSkip() }, async (t) => {
    const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 1000, profiles: [...profiles] })
    t.teardown(async () => { await emulator.close() })
    const instances = await startInstances(t, clusterEnv(t, emulator), 2)
    const visitors = await connectVisitors(t, ['tab', 'tab', 'tab', 'tab'], (i) => instances[i % 2] as Instance)
    const clientId = visitors[0]?.clientId as string
    const texts = Array.from({ length: 12 }, (_, i) => `v-${i}`)
    for (const text of texts) emulator.agentReply(TOKEN, clientId, text)
    await Promise.all(visitors.map(async (v) => { await v.sees(texts) }))
    for (const [i, v] of visitors.entries()) t.same(v.tally(texts), { lost: 0, doubled: 0 }, `socket ${i}: every event once`)

    const polls = (): number => emulator.requests.filter((r) => r.route === 'events' && r.clientId === clientId).length
    const before = polls()
    await new Promise((resolve) => setTimeout(resolve, 4000))
    const made = polls() - before
    t.ok(made <= 7, `${made} upstream polls in 4 s for one idle connection, across the cluster`)
  })
}
