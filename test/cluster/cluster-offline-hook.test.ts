import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import t, { type Test } from 'tap'
import { clusterEnv, redisSkip, SHARED_REDIS, socketOpener, startClusterEmulator, startInstance, type Instance } from '../fixtures/cluster.js'
import type { Frame } from '../fixtures/ws-client.js'

const WEBHOOK_SECRET = 'cluster-webhook-secret-0123'
const HOOK_SECRET = 'cluster-offline-hook-secret-0123'

interface HookCall { timestamp: string, signature: string, raw: string, body: { clientId: string, id: string, event: Record<string, unknown> } }

/** The operator's hook: a real HTTP server in the test process that records every post and answers 200. */
async function startHook (t: Test): Promise<{ url: string, calls: HookCall[], next: () => Promise<HookCall> }> {
  const calls: HookCall[] = []
  const waiters: Array<(c: HookCall) => void> = []
  let seen = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const call = { timestamp: String(req.headers['x-chatapi-bridge-timestamp']), signature: String(req.headers['x-chatapi-bridge-signature']), raw, body: JSON.parse(raw) as HookCall['body'] }
      calls.push(call)
      res.writeHead(200).end()
      waiters.shift()?.(call)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const next = async (): Promise<HookCall> => {
    const k = seen++
    if (calls[k] !== undefined) return calls[k]
    return await new Promise((resolve) => waiters.push(resolve))
  }
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/push`, calls, next }
}

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
  t.equal(first.signature, `sha256=${createHmac('sha256', HOOK_SECRET).update(`${first.timestamp}.${first.raw}`).digest('hex')}`)
  t.match(first.body.event, { questionId: 'q-away' })

  // A marker, posted after both, proves no other post was on its way.
  t.same((await post(webhook(two), [mail('marker-client', 'q-marker', 'marker')])).status, 200)
  t.equal((await hook.next()).body.clientId, 'marker-client')
  t.equal(hook.calls.length, 2, 'one post for the away client, none for the present one')

  // Once its socket closes, the present client is away for both instances.
  b.close()
  await b.closed()
  t.same((await post(webhook(one), [mail(present, 'q-left', 'after leaving')])).status, 200)
  t.equal((await hook.next()).body.clientId, present)
})
