import t, { type Test } from 'tap'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { Frame } from '../fixtures/ws-client.js'

const SECRET = 'webhook-secret-for-tests-0123'
const isWebhook = (f: Frame): boolean => f.type === 'event' && (f.event as { type: string }).type === 'webhook'
const inner = (f: Frame): Record<string, unknown> => (f.event as { event: Record<string, unknown> }).event

async function withWebhook (t: Test, env: Record<string, string> = {}): Promise<Harness & { hook: string }> {
  const h = await startBridge(t, { WEBHOOK_SECRET: SECRET, ...env }, { webhookRetryDelayMs: 20, agentDelayMs: 50 })
  const hook = `${h.httpUrl}/v1/webhook/default/${SECRET}`
  h.emulator.setWebhookUrl(hook)
  return Object.assign(h, { hook })
}

async function post (url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body, headers })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

t.test('sendAsync answers with the questionId, then the answer arrives as a webhook event', async (t) => {
  const h = await withWebhook(t)
  const a = await h.client({ cid: 'tab' })
  const r = await a.request({ type: 'sendAsync', id: '1', query: 'hello later' })
  t.equal(r.ok, true)
  const questionId = (r.result as { questionId: string }).questionId
  t.type(questionId, 'string')
  const ev = await a.next((f) => isWebhook(f) && inner(f).questionId === questionId)
  t.match(inner(ev), { clientId: a.welcome.clientId, questionId, data: { replies: Array } })
  t.notOk(JSON.stringify(ev).includes(TOKEN), 'the token is removed')
  t.type(ev.cursor, 'string')
})

t.test('a campaign reaches every socket of every listed client, and no other', async (t) => {
  const h = await withWebhook(t)
  const a1 = await h.client({ cid: 'one' })
  const a2 = await h.client({ auth: a1.welcome.ticket, cid: 'two' })
  const b = await h.client()
  const outsider = await h.client()
  h.emulator.campaign(TOKEN, [a1.welcome.clientId as string, b.welcome.clientId as string], 'Spring sale')
  for (const c of [a1, a2, b]) {
    const ev = await c.next((f) => isWebhook(f) && JSON.stringify(f).includes('Spring sale'))
    t.equal(inner(ev).clientId, c.welcome.clientId)
  }
  // A later event to the outsider proves the campaign did not reach it meanwhile.
  h.emulator.agentReply(TOKEN, outsider.welcome.clientId as string, 'just for you')
  await outsider.next((f) => JSON.stringify(f).includes('just for you'))
  t.notOk(outsider.frames.some((f) => JSON.stringify(f).includes('Spring sale')))
})

t.test('a retried delivery appears once; a wrong secret delivers nothing', async (t) => {
  const h = await withWebhook(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  const body = JSON.stringify([{ clientId, questionId: 'q-retry', timestamp: '2026-11-24T10:00:00.000', data: { replies: [{ type: 'text', text: 'once only' }] }, token: TOKEN }])
  const first = await post(h.hook, body)
  t.same(first, { status: 200, body: { accepted: 1, duplicates: 0 } })
  const again = await post(h.hook, body)
  t.same(again, { status: 200, body: { accepted: 0, duplicates: 1 } })
  const wrong = await post(`${h.httpUrl}/v1/webhook/default/not-the-secret-000000`, JSON.stringify([{ clientId, questionId: 'q-wrong', data: {} }]))
  t.equal(wrong.status, 404)
  const other = await post(`${h.httpUrl}/v1/webhook/nochannel/${SECRET}`, body)
  t.equal(other.status, 404, 'an unknown channel')
  // A marker proves everything before it has arrived.
  await post(h.hook, JSON.stringify([{ clientId, questionId: 'q-marker', data: {} }]))
  await a.next((f) => isWebhook(f) && inner(f).questionId === 'q-marker')
  t.equal(a.frames.filter((f) => isWebhook(f) && inner(f).questionId === 'q-retry').length, 1, 'once')
  t.equal(a.frames.filter((f) => isWebhook(f) && inner(f).questionId === 'q-wrong').length, 0, 'wrong secret: nothing')
  t.notOk(JSON.stringify(a.frames).includes(TOKEN))
})

t.test('an agent reply that comes by webhook and by poll is shown once', async (t) => {
  const h = await withWebhook(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  const ev = h.emulator.agentReply(TOKEN, clientId, 'one reply, two roads')
  const questionId = (ev.event as { questionId: string }).questionId
  const taken = (): number => (h.app.bridge.inbox?.counts.accepted ?? 0) + (h.app.bridge.inbox?.counts.duplicates ?? 0)
  await until(() => taken() === 1, 5000, 'the webhook road')
  // An event only the poll carries: once it is here, the poll's copy of the reply was handled too.
  h.emulator.publish(TOKEN, clientId, 'marker', {})
  await a.next((f) => f.type === 'event' && (f.event as { type: string }).type === 'marker')
  const shown = a.frames.filter((f) => f.type === 'event' && JSON.stringify(f).includes(questionId))
  t.equal(shown.length, 1, `shown once (${shown.map((f) => (f.event as { type: string }).type).join(', ')})`)
})

t.test('a client that was away during a campaign gets it on resume', async (t) => {
  const h = await withWebhook(t, { POLL_LINGER_MS: '0' })
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, clientId, 'before')
  const before = await a.next((f) => f.type === 'event')
  a.close()
  await a.closed()
  await until(() => h.app.bridge.hub.stats().feeds === 0, 5000, 'the feed to end')
  h.emulator.campaign(TOKEN, [clientId], 'while away')
  const taken = (): number => (h.app.bridge.inbox?.counts.accepted ?? 0) + (h.app.bridge.inbox?.counts.duplicates ?? 0)
  await until(() => taken() === 2, 5000, 'the webhook to take the agent reply and the campaign')
  const b = await h.client({ auth: a.welcome.ticket, cid: 'tab', resume: before.cursor })
  t.equal(b.welcome.resumed, true)
  const ev = await b.next((f) => isWebhook(f) && JSON.stringify(f).includes('while away'))
  t.ok(ev)
  t.equal(b.events().filter((f) => JSON.stringify(f).includes('before')).length, 0, 'nothing before the cursor')
})

t.test('bad deliveries get clear 4xx answers and nothing else breaks', async (t) => {
  const h = await withWebhook(t, { WEBHOOK_MAX_BYTES: '2048', WEBHOOK_RATE_PER_S: '5' })
  const a = await h.client()
  t.match(await post(h.hook, '{nope'), { status: 400, body: { error: 'body.not.json' } })
  t.match(await post(h.hook, '{"clientId":"x"}'), { status: 400, body: { error: 'body.not.array' } })
  t.match(await post(h.hook, '[{"questionId":"q"}]'), { status: 400, body: { error: 'clientId.missing', message: /element 0/ } })
  t.match(await post(h.hook, '[1]'), { status: 400, body: { error: 'object.invalid' } })
  const big = await fetch(h.hook, { method: 'POST', body: JSON.stringify([{ clientId: 'x', blob: 'y'.repeat(4000) }]), headers: { 'content-type': 'application/json' } })
  t.equal(big.status, 413, 'oversized')
  let limited = 0
  for (let i = 0; i < 20; i++) if ((await post(h.hook, '[]')).status === 429) limited++
  t.ok(limited > 0, `a flood is limited (${limited} of 20 got 429)`)
  t.equal((await a.request({ type: 'getState', id: 's' })).ok, true, 'sockets are unaffected')
})
