import t, { type Test } from 'tap'
import { startEmulator, type Emulator, type UpstreamEvent } from '../../dist/emulator/index.js'

const TOKEN = 'demo-token'

async function start (t: Test): Promise<Emulator> {
  const emulator = await startEmulator({ holdMs: 10_000 })
  t.teardown(() => emulator.close())
  return emulator
}

async function post<T = UpstreamEvent> (url: string, body: unknown): Promise<{ status: number, json: T }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: await res.json() as T }
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise(resolve => setTimeout(resolve, 2))
}

t.test('an agent reply over HTTP reaches a held poll', async t => {
  const em = await start(t)
  const held = fetch(`${em.url}/${TOKEN}/events?clientId=u`).then(res => res.json())
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  const { status, json } = await post(`${em.origin}/operator/${TOKEN}/agent-reply`, { clientId: 'u', text: 'Hello from support' })
  t.equal(status, 200)
  t.match(json, {
    type: 'agentResponse',
    event: { clientId: 'u', text: 'Hello from support', token: TOKEN, data: { replies: [{ type: 'text', text: 'Hello from support', state: '/agent' }] } }
  })
  t.match(json.event.questionId, /^[0-9a-f-]{36}$/)
  t.same(await held, { events: [json] })
})

t.test('an agent reply or an event for a client the channel never saw is refused with 404, saying so', async t => {
  const em = await start(t)
  for (const [route, body] of [['agent-reply', { clientId: 'CLIENT-ID', text: 'Hi' }], ['publish', { clientId: 'CLIENT-ID', type: 'custom' }]] as const) {
    const { status, json } = await post<{ error: string, message: string }>(`${em.origin}/operator/${TOKEN}/${route}`, body)
    t.equal(status, 404, route)
    t.equal(json.error, 'client.not.found')
    t.match(json.message, /no client "CLIENT-ID" has used this channel yet/)
  }
  t.equal((await post(`${em.origin}/operator/nope/agent-reply`, { clientId: 'CLIENT-ID', text: 'Hi' })).status, 401, 'an unknown token is still a 401')
  // Once the client has sent a message, the same call goes through.
  t.equal((await fetch(`${em.url}/${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: 'CLIENT-ID', query: 'hi' }) })).status, 200)
  t.equal((await post(`${em.origin}/operator/${TOKEN}/agent-reply`, { clientId: 'CLIENT-ID', text: 'Hi' })).status, 200)
})

t.test('publish appends any event type with a timestamp', async t => {
  const em = await start(t)
  // A custom type reaches a poll with all=true only.
  const held = fetch(`${em.url}/${TOKEN}/events?clientId=u&all=true`).then(res => res.json())
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  const { json } = await post(`${em.origin}/operator/${TOKEN}/publish`, { clientId: 'u', type: 'custom', body: { x: 1, timestamp: 'ignored' } })
  t.same(await held, { events: [json] })
  t.equal(json.type, 'custom')
  t.equal(json.event.x, 1)
  t.match(json.event.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/, 'the log\'s own stamp wins')
  const polled = await (await fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0&all=true`)).json()
  t.same(polled.events, [json])
  const bare = em.publish(TOKEN, 'u', 'plain')
  t.same(Object.keys(bare.event), ['timestamp'])
})

t.test('campaign, stats and bad bodies', async t => {
  const em = await start(t)
  const campaign = await post(`${em.origin}/operator/${TOKEN}/campaign`, { clientIds: ['a', 'b'], text: 'news' })
  t.equal(campaign.status, 202)
  t.same(campaign.json, { clients: 2 })
  await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)
  const stats = await (await fetch(`${em.origin}/operator/stats`)).json()
  t.same(stats, { activePolls: 0, requests: { operator: 2, sendGet: 1 } })
  for (const [path, body] of [['agent-reply', { clientId: 'u' }], ['publish', { clientId: 'u' }], ['campaign', { clientIds: 'a', text: 'x' }]] as const) {
    const res = await post<{ error: string }>(`${em.origin}/operator/${TOKEN}/${path}`, body)
    t.equal(res.status, 400, path)
    t.equal(res.json.error, 'request.invalid')
  }
})
