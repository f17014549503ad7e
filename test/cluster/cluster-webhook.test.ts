import t from 'tap'
import { TOKEN } from '../fixtures/bridge.js'
import { clusterEnv, redisSkip, SHARED_REDIS, socketOpener, startClusterEmulator, startInstance } from '../fixtures/cluster.js'
import type { Frame } from '../fixtures/ws-client.js'
import { pollsHeld } from '../fixtures/waits.js'

const HOOK_SECRET = 'cluster-webhook-secret-0123'
const isMail = (text: string) => (f: Frame): boolean => f.type === 'event' && (f.event as { type: string }).type === 'webhook' && JSON.stringify(f).includes(text)

async function post (url: string, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

t.test('webhook mail taken by one instance reaches sockets on every instance, once, and waits for resumes', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const env = clusterEnv(t, emulator, SHARED_REDIS, { WEBHOOK_SECRET: HOOK_SECRET, POLL_LINGER_MS: '0' })
  const [one, two] = await Promise.all([startInstance(t, env), startInstance(t, env)])
  const hook = (i: typeof one): string => `${i.http}/v1/webhook/default/${HOOK_SECRET}`
  const open = socketOpener(t)

  const a = await open(one, { cid: 'a' })
  const clientId = a.welcome.clientId as string
  const b = await open(two, { cid: 'b', auth: a.welcome.ticket })
  await pollsHeld(emulator, { clientId }, 2, 10_000)

  const campaign = { clientId, questionId: 'camp-1', timestamp: '2026-11-24T12:00:00.000', data: { replies: [{ type: 'text', text: 'spring sale' }] } }
  t.same(await post(hook(one), [campaign]), { status: 200, body: { accepted: 1, duplicates: 0 } }, 'taken by instance one')
  await a.next(isMail('spring sale'), 10_000)
  await b.next(isMail('spring sale'), 10_000)
  t.pass('sockets on both instances got it')
  t.same(await post(hook(two), [campaign]), { status: 200, body: { accepted: 0, duplicates: 1 } }, 'a retry to the other instance is a duplicate')

  // A visitor away during a campaign gets it on resume, from another instance.
  emulator.agentReply(TOKEN, clientId, 'before leaving')
  const last = await b.next((f) => f.type === 'event' && JSON.stringify(f).includes('before leaving'), 10_000)
  b.close()
  await b.closed()
  await pollsHeld(emulator, { clientId, cid: 'b' }, 0, 10_000)
  t.same((await post(hook(two), [{ ...campaign, questionId: 'camp-2', data: { replies: [{ type: 'text', text: 'while away' }] } }])).status, 200)
  const back = await open(one, { cid: 'b', auth: a.welcome.ticket, resume: last.cursor })
  t.equal(back.welcome.resumed, true)
  await back.next(isMail('while away'), 10_000)
  // A marker proves nothing else is coming: the first campaign is not replayed.
  emulator.publish(TOKEN, clientId, 'marker', {})
  await back.next((f) => f.type === 'event' && (f.event as { type: string }).type === 'marker', 10_000)
  t.equal(back.frames.filter(isMail('spring sale')).length, 0, 'nothing before the cursor')
  t.equal(back.frames.filter(isMail('while away')).length, 1, 'once')
  await a.next(isMail('while away'), 10_000)
  t.equal(a.frames.filter(isMail('spring sale')).length, 1, 'the first socket saw the first campaign once')
})
