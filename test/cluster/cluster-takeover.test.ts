import t from 'tap'
import { Redis } from 'ioredis'
import type { Emulator } from '../../dist/emulator/index.js'
import type { RequestRecord } from '../../dist/emulator/request-log.js'
import { clusterEnv, connectTab, ownerOf, redisSkip, roundRobin, SHARED_REDIS, startClusterEmulator, startInstance, startInstances, Visitor, type Instance } from '../fixtures/cluster.js'

/**
 * Takeovers that nothing but the owner's alive key can trigger: no event
 * flows, so no append is fenced out and no socket moves. The instances run
 * with REDIS_LEASE_MS=1000 (the fixtures' setting): a dead owner's alive
 * key expires at most a lease after its last renewal, and the others look
 * every third of a lease, so a takeover comes within about 1⅓ leases.
 */

const skip = redisSkip()
const LEASE_MS = 1000

/** A function that resolves at the connection's next upstream poll, with its time (the emulator's listeners cannot be removed: one serves each test). */
function nextPolls (emulator: Emulator, clientId: string): (timeoutMs: number) => Promise<number> {
  let waiting: ((at: number) => void) | undefined
  emulator.on('request', (r: RequestRecord) => {
    if (r.route === 'events' && r.clientId === clientId) waiting?.(r.at)
  })
  return async (timeoutMs) => await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no upstream poll for ${clientId} in ${timeoutMs} ms`)) }, timeoutMs)
    waiting = (at) => {
      waiting = undefined
      clearTimeout(timer)
      resolve(at)
    }
  })
}

t.test('kill -9 of the owner of an idle connection: another instance polls within about 1⅓ leases', { skip }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const instances = await startInstances(t, clusterEnv(t, emulator), 3)
  const { clientId } = await connectTab(t, emulator, 3, roundRobin(instances))
  const owner = await ownerOf(instances) as Instance

  const polled = nextPolls(emulator, clientId)(10 * LEASE_MS)
  owner.child.kill('SIGKILL')
  const killedAt = Date.now()
  const takeover = await polled - killedAt
  t.comment(`an instance polled again ${takeover} ms after the kill (REDIS_LEASE_MS=${LEASE_MS})`)
  t.ok(takeover < 3 * LEASE_MS, 'within about a lease and a third (with room for a busy machine)')
  const next = await ownerOf(instances.filter((i) => i !== owner))
  t.ok(next !== undefined, `${next?.name ?? 'nobody'} holds the lease`)
})

t.test('a lease left by an instance that died with no other instance serving the connection: a later socket gets it at once', { skip }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const env = clusterEnv(t, emulator)
  const first = await startInstance(t, env)
  const { visitors, clientId } = await connectTab(t, emulator, 1, () => first)
  const auth = { ticket: visitors[0]!.ticket as string, clientId }
  // Killed before its socket leaves: a socket that left first would have the instance release the lease itself
  // (a feed that delivered nothing ends at once), and there would be no dead lease to find.
  first.child.kill('SIGKILL')
  visitors[0]!.stop()

  // The lease key outlives the instance (it lasts as long as the stream): only the instance's alive key says it is dead.
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const leases = async (): Promise<number> => (await redis.keys(`${env.prefix}feed:*:lease`)).length
  const alive = async (): Promise<number> => (await redis.keys(`${env.prefix}alive:*`)).length
  // Nothing announces that a key expired: look every 50 ms.
  while (await alive() > 0) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await leases(), 1, 'the dead instance\'s lease is still there after its alive key expired')

  const second = await startInstance(t, env)
  const polled = nextPolls(emulator, clientId)(10 * LEASE_MS)
  const v = new Visitor('tab', () => second, auth)
  t.teardown(() => { v.stop() })
  const helloAt = Date.now()
  await v.connect()
  const wait = await polled - helloAt
  t.comment(`the new instance polled ${wait} ms after the hello`)
  t.ok(wait < LEASE_MS, 'within a tick or so, not a lease key\'s lifetime')
  t.equal(await second.metric('bridge_cluster_polls_owned'), 1, 'the new instance holds the lease')
})
