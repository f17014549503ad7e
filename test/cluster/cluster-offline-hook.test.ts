import t from 'tap'
import { Redis } from 'ioredis'
import { clusterEnv, redisSkip, SHARED_REDIS, socketOpener, startClusterEmulator, startInstance, type Instance } from '../fixtures/cluster.js'
import { signedWith, startHook } from '../fixtures/hook-recorder.js'
import type { Frame } from '../fixtures/ws-client.js'
import { presenceKey } from '../../dist/cluster/keys.js'
import { clientKey } from '../../dist/lib/client-key.js'

const WEBHOOK_SECRET = 'cluster-webhook-secret-0123'
const HOOK_SECRET = 'cluster-offline-hook-secret-0123'

async function post (url: string, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

const mail = (clientId: string, questionId: string, text: string): Record<string, unknown> =>
  ({ clientId, questionId, timestamp: '2026-11-24T12:00:00.000', data: { replies: [{ type: 'text', text }] } })

t.test('with two instances, exactly one posts an event for a client with no socket anywhere, and none for a client with a socket on the other', { skip: redisSkip() }, async (t) => {
  const hook = await startHook(t)
  const emulator = await startClusterEmulator(t)
  const env = clusterEnv(t, emulator, SHARED_REDIS, { WEBHOOK_SECRET, OFFLINE_HOOK_URL: hook.url, OFFLINE_HOOK_SECRET: HOOK_SECRET })
  const [one, two] = await Promise.all([startInstance(t, env), startInstance(t, env)])
  const webhook = (i: Instance): string => `${i.http}/v1/webhook/default/${WEBHOOK_SECRET}`
  const open = socketOpener(t)

  // The client's socket is on instance two; instance one takes the delivery.
  const b = await open(two, { cid: 'b' })
  const present = b.welcome.clientId as string
  t.same(await post(webhook(one), [mail(present, 'q-here', 'on the other instance')]), { status: 200, body: { accepted: 1, duplicates: 0 } })
  await b.next((f: Frame) => f.type === 'event' && JSON.stringify(f).includes('on the other instance'), 10_000)

  // A client with no socket anywhere: one instance takes it, the platform's retry lands on the other.
  t.same((await post(webhook(one), [mail('nobody-home', 'q-away', 'come back')])).status, 200)
  t.same(await post(webhook(two), [mail('nobody-home', 'q-away', 'come back')]), { status: 200, body: { accepted: 0, duplicates: 1 } })
  const first = await hook.next()
  t.equal(first.body.clientId, 'nobody-home', 'the first post is the away client\'s, not the present one\'s')
  t.ok(signedWith(HOOK_SECRET, first), 'signed with the hook\'s secret')
  t.match(first.body.event, { questionId: 'q-away' })

  // A marker, posted after both, proves no other post was on its way.
  t.same((await post(webhook(two), [mail('marker-client', 'q-marker', 'marker')])).status, 200)
  t.equal((await hook.next()).body.clientId, 'marker-client')
  t.equal(hook.calls.length, 2, 'one post for the away client, none for the present one')

  // Once its socket closes, the present client is away for both instances.
  b.close()
  await b.closed()
  // The client's close reaches instance two a moment later, and its removal from the presence set later still: a
  // delivery before that finds the client present there (and is pushed to its stream, not posted).
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const presence = presenceKey(env.prefix, clientKey('default', present))
  const deadline = Date.now() + 5000
  while (await redis.scard(presence) > 0) {
    if (Date.now() > deadline) throw new Error('instance two never left the presence set')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.same((await post(webhook(one), [mail(present, 'q-left', 'after leaving')])).status, 200)
  t.equal((await hook.next()).body.clientId, present)
})
