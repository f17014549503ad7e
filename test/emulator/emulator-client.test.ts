import t, { type Test } from 'tap'
import type { ChatResponse } from '../../dist/emulator/bot.js'
import type { HistoryMessage } from '../../dist/emulator/channel-store.js'
import { startEmulator, type Emulator, type UpstreamEvent } from '../../dist/emulator/index.js'

const TOKEN = 'demo-token'

async function start (t: Test): Promise<Emulator> {
  const emulator = await startEmulator({ holdMs: 10_000 })
  t.teardown(() => emulator.close())
  return emulator
}

/** Loose on purpose: each test reads the fields its route answers with. */
interface Answer {
  messages: HistoryMessage[]
  events: UpstreamEvent[]
  count: number
  status: string
  error: string
}

async function call<T = Answer> (url: string, body?: unknown): Promise<{ status: number, json: T }> {
  const res = await fetch(url, body === undefined
    ? {}
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: await res.json() as T }
}

const msOf = (timestamp: string): number => Date.parse(`${timestamp}Z`)

t.test('history: oldest first, from/to inclusive, limit keeps the most recent', async t => {
  const em = await start(t)
  const sent: ChatResponse[] = []
  for (const query of ['one', 'two', 'three', 'four', 'five']) {
    sent.push((await call<ChatResponse>(`${em.url}/${TOKEN}`, { clientId: 'u', query })).json)
  }
  const [, second, , fourth] = sent as [ChatResponse, ChatResponse, ChatResponse, ChatResponse, ChatResponse]
  const base = `${em.url}/${TOKEN}/client/u/history`
  const all = (await call(base)).json.messages
  t.same(all.map(m => m.questionId), sent.map(s => s.questionId))
  t.same(all[0], { questionId: sent[0]?.questionId, timestamp: sent[0]?.timestamp, request: { query: 'one' }, response: sent[0]?.data })

  t.same((await call(`${base}?limit=2`)).json.messages.map(m => (m.request as { query: string }).query), ['four', 'five'])

  const from = msOf(second.timestamp)
  const to = msOf(fourth.timestamp)
  const inSpan = sent.filter(s => msOf(s.timestamp) >= from && msOf(s.timestamp) <= to).map(s => s.questionId)
  const span = (await call(`${base}?from=${from}&to=${to}`)).json.messages
  t.same(span.map(m => m.questionId), inSpan, 'both bounds inclusive')
  t.ok(inSpan.includes(second.questionId) && inSpan.includes(fourth.questionId))
  t.same((await call(`${base}?from=${from}&to=${to}&limit=1`)).json.messages.map(m => m.questionId), inSpan.slice(-1))

  t.same((await call(`${em.url}/${TOKEN}/client/nobody/history`)).json, { messages: [] })
  const bad = await call(`${base}?limit=many`)
  t.equal(bad.status, 400)
  t.equal(bad.json.error, 'request.invalid')
})

t.test('state is stored as is, returned unchanged, and announced as stateUpdate', async t => {
  const em = await start(t)
  const url = `${em.url}/${TOKEN}/client/u/state`
  t.same((await call(url)).json, {}, 'no state yet')
  const held = call(`${em.url}/${TOKEN}/events?clientId=u&all=true`)
  while (em.activePolls(TOKEN, 'u') === 0) await new Promise(resolve => setTimeout(resolve, 2))
  const state = { page: '/cart', items: [1, 2, { sku: 'x' }], nested: { deep: null } }
  const saved = await call(url, state)
  t.equal(saved.status, 200)
  t.same(saved.json, state)
  t.same((await call(url)).json, state)
  const { json } = await held
  t.equal(json.events.length, 1)
  t.same(Object.keys(json.events[0]?.event ?? {}).sort(), ['state', 'timestamp', 'token'])
  t.match(json.events[0], { type: 'stateUpdate', event: { state, token: TOKEN } })
  for (const body of [[1, 2], 'text', 3]) t.equal((await call(url, body)).status, 400, `not an object: ${JSON.stringify(body)}`)
})

t.test('message statuses and the unread count', async t => {
  const em = await start(t)
  const client = `${em.url}/${TOKEN}/client/u`
  const ids: string[] = []
  for (const query of ['a', 'b', 'c']) ids.push((await call<ChatResponse>(`${em.url}/${TOKEN}`, { clientId: 'u', query })).json.questionId)
  const [a, b, c] = ids as [string, string, string]
  t.same((await call(`${client}/message-not-read-count`)).json, { count: 3 })
  t.same((await call(`${client}/message/${a}/status`)).json, { questionId: a, status: 'SENT' })

  t.same((await call(`${client}/message/${a}/status`, { status: 'READ' })).json, { questionId: a, status: 'READ' })
  t.same((await call(`${client}/message/${a}/status`)).json.status, 'READ')
  t.same((await call(`${client}/message-not-read-count`)).json, { count: 2 })

  const batch = await call(`${client}/message-statuses`, { statuses: [{ questionId: b, status: 'DELIVERED' }, { questionId: c, status: 'READ' }] })
  t.equal(batch.status, 200)
  t.same((await call(`${client}/message/${b}/status`)).json.status, 'DELIVERED')
  t.same((await call(`${client}/message-not-read-count`)).json, { count: 1 })

  em.agentReply(TOKEN, 'u', 'an agent writes')
  t.same((await call(`${client}/message-not-read-count`)).json, { count: 2 }, 'agent replies count as unread')
  t.same((await call(`${em.url}/${TOKEN}/client/nobody/message-not-read-count`)).json, { count: 0 })

  const unknown = await call(`${client}/message/not-a-message/status`)
  t.equal(unknown.status, 404)
  t.equal(unknown.json.error, 'message.not.found')
  t.equal((await call(`${client}/message/not-a-message/status`, { status: 'READ' })).status, 404)
  const mixed = await call(`${client}/message-statuses`, { statuses: [{ questionId: b, status: 'READ' }, { questionId: 'nope', status: 'READ' }] })
  t.equal(mixed.status, 404)
  t.equal((await call(`${client}/message/${b}/status`)).json.status, 'DELIVERED', 'a batch with an unknown id changes nothing')

  const bad = await call(`${client}/message/${b}/status`, { status: 'SEEN' })
  t.equal(bad.status, 400)
  t.equal(bad.json.error, 'request.invalid')
  t.equal((await call(`${client}/message-statuses`, { statuses: [{ questionId: b }] })).status, 400)
})
