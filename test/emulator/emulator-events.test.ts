import t, { type Test } from 'tap'
import { startEmulator, type Emulator, type EmulatorOptions, type UpstreamEvent } from '../../dist/emulator/index.js'

const TOKEN = 'demo-token'

async function start (t: Test, options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator(options)
  t.teardown(() => emulator.close())
  return emulator
}

interface EventsAnswer { events: UpstreamEvent[], error?: string }

/** GET /events and its answer, with how long it took. */
async function poll (em: Emulator, query: string, signal?: AbortSignal): Promise<{ status: number, json: EventsAnswer, ms: number }> {
  const started = Date.now()
  const res = await fetch(`${em.url}/${TOKEN}/events?${query}`, signal === undefined ? {} : { signal })
  return { status: res.status, json: await res.json() as EventsAnswer, ms: Date.now() - started }
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise(resolve => setTimeout(resolve, 2))
}

/** Epoch ms of an event's zone-less upstream timestamp. */
function msOf (item: UpstreamEvent): number {
  return Date.parse(`${String(item.event.timestamp)}Z`)
}

const texts = (json: EventsAnswer): unknown[] => json.events.map(e => e.event.text)

t.test('ts is inclusive: an event stamped exactly at ts comes back at once', async t => {
  const em = await start(t, { holdMs: 10_000 })
  em.agentReply(TOKEN, 'u', 'first')
  const second = em.agentReply(TOKEN, 'u', 'second')
  const ts = msOf(second)
  const { json, ms } = await poll(em, `clientId=u&ts=${ts}`)
  t.ok(ms < 5_000, 'answered without holding')
  t.ok(texts(json).includes('second'))
  t.ok(json.events.every(e => msOf(e) >= ts), 'nothing older than ts')
  const fractional = await poll(em, `clientId=u&ts=${ts - 0.5}`)
  t.ok(texts(fractional.json).includes('second'), 'a fractional ts is taken')
})

t.test('with nothing to return a poll is held for holdMs, then answered empty', async t => {
  const em = await start(t, { holdMs: 200 })
  const { status, json, ms } = await poll(em, 'clientId=u')
  t.equal(status, 200)
  t.same(json, { events: [] })
  t.ok(ms >= 180, `held ${ms} ms`)
  t.equal(em.activePolls(TOKEN, 'u'), 0)
  t.equal(em.maxActivePolls(TOKEN, 'u'), 1)
})

t.test('a held poll wakes on a matching event', async t => {
  const em = await start(t, { holdMs: 10_000 })
  const held = poll(em, 'clientId=u&cid=a')
  await until(() => em.activePolls(TOKEN, 'u', 'a') === 1)
  em.publish(TOKEN, 'u', 'stateUpdate', { state: {} })
  em.publish(TOKEN, 'other-client', 'agentResponse', { text: 'not yours' })
  t.equal(em.activePolls(TOKEN, 'u'), 1, 'other types and other clients do not wake it')
  const published = Date.now()
  const reply = em.agentReply(TOKEN, 'u', 'hello')
  const { json } = await held
  t.ok(Date.now() - published < 5_000, 'answered long before holdMs')
  t.same(json.events, [JSON.parse(JSON.stringify(reply))])
  t.equal(em.activePolls(TOKEN, 'u'), 0)
})

t.test('a sync send wakes an all=true poll with the request and its answer together', async t => {
  const em = await start(t, { holdMs: 10_000 })
  const held = poll(em, 'clientId=u&all=true')
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  await fetch(`${em.url}/${TOKEN}?clientId=u&query=hi`)
  t.same((await held).json.events.map(e => e.type), ['clientRequest', 'botResponse'])
})

t.test('without ts the server-side cursor of (clientId, cid) decides', async t => {
  const em = await start(t, { holdMs: 200 })
  em.agentReply(TOKEN, 'u', 'before the first poll')
  t.same((await poll(em, 'clientId=u')).json.events, [], 'a key never seen starts at the end of the log')
  em.agentReply(TOKEN, 'u', 'one')
  em.agentReply(TOKEN, 'u', 'two')
  t.same(texts((await poll(em, 'clientId=u')).json), ['one', 'two'])
  t.same((await poll(em, 'clientId=u')).json.events, [], 'the cursor moved past them')

  em.agentReply(TOKEN, 'u', 'three')
  t.same(texts((await poll(em, 'clientId=u&ts=0')).json), ['before the first poll', 'one', 'two', 'three'])
  t.same((await poll(em, 'clientId=u')).json.events, [], 'a ts poll moves the cursor too')
})

t.test('two pollers of one key take events from each other', async t => {
  const em = await start(t, { holdMs: 300 })
  const a = poll(em, 'clientId=u')
  const b = poll(em, 'clientId=u')
  await until(() => em.activePolls(TOKEN, 'u') === 2)
  em.agentReply(TOKEN, 'u', 'only once')
  t.equal(em.activePolls(TOKEN, 'u'), 1, 'one poll answered, the other still held')
  const answers = [(await a).json.events, (await b).json.events]
  t.same(answers.flat().map(e => e.event.text), ['only once'])
  t.equal(em.maxActivePolls(TOKEN, 'u'), 2)
})

t.test('cid: only events appended after the cid was first seen', async t => {
  const em = await start(t, { holdMs: 200 })
  em.agentReply(TOKEN, 'u', 'old')
  t.same((await poll(em, 'clientId=u&cid=c1&ts=0')).json.events, [], 'older events are not the connection\'s')
  em.agentReply(TOKEN, 'u', 'new')
  t.same(texts((await poll(em, 'clientId=u&cid=c1&ts=0')).json), ['new'])
  t.same(texts((await poll(em, 'clientId=u&ts=0')).json), ['old', 'new'], 'without cid everything')
  t.same((await poll(em, 'clientId=u&cid=c2&ts=0')).json.events, [])
})

t.test('all=true returns every type, the default only agent replies', async t => {
  const em = await start(t, { holdMs: 200 })
  await fetch(`${em.url}/${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: 'u', query: 'x' }) })
  em.publish(TOKEN, 'u', 'stateUpdate', { state: { page: 2 } })
  em.agentReply(TOKEN, 'u', 'agent')
  const types = (json: EventsAnswer): string[] => json.events.map(e => e.type)
  t.same(types((await poll(em, 'clientId=u&ts=0')).json), ['agentResponse'])
  t.same(types((await poll(em, 'clientId=u&ts=0&all=false')).json), ['agentResponse'])
  t.same(types((await poll(em, 'clientId=u&ts=0&all=true')).json), ['clientRequest', 'botResponse', 'stateUpdate', 'agentResponse'])
})

t.test('at most 250 events per answer, oldest first; the cursor continues', async t => {
  const em = await start(t, { holdMs: 200 })
  t.same((await poll(em, 'clientId=u')).json.events, [])
  for (let n = 0; n < 300; n++) em.publish(TOKEN, 'u', 'agentResponse', { n })
  const first = await poll(em, 'clientId=u')
  t.same(first.json.events.map(e => e.event.n), Array.from({ length: 250 }, (_, n) => n))
  const rest = await poll(em, 'clientId=u')
  t.same(rest.json.events.map(e => e.event.n), Array.from({ length: 50 }, (_, n) => 250 + n))
})

t.test('a client that leaves while held is forgotten at once', async t => {
  const em = await start(t, { holdMs: 30_000 })
  const abort = new AbortController()
  const held = poll(em, 'clientId=u&cid=c', abort.signal).catch((err: Error) => err)
  await until(() => em.activePolls(TOKEN, 'u', 'c') === 1)
  abort.abort()
  t.type(await held, Error)
  await until(() => em.activePolls(TOKEN, 'u') === 0)
  t.equal(em.activePolls(TOKEN, 'u', 'c'), 0)
  t.equal(em.maxActivePolls(TOKEN, 'u', 'c'), 1)
  em.agentReply(TOKEN, 'u', 'after the abort')
  const next = await poll(em, 'clientId=u&cid=c')
  t.same(texts(next.json), ['after the abort'], 'the aborted poll did not move the cursor')
})

t.test('polls are counted per cid', async t => {
  const em = await start(t, { holdMs: 10_000 })
  const polls = [poll(em, 'clientId=u&cid=a'), poll(em, 'clientId=u&cid=b'), poll(em, 'clientId=u')]
  await until(() => em.activePolls(TOKEN, 'u') === 3)
  t.equal(em.activePolls(TOKEN, 'u', 'a'), 1)
  t.equal(em.activePolls(TOKEN, 'u', ''), 1, 'a poll without cid counts under ""')
  const stats = await (await fetch(`${em.origin}/operator/stats`)).json() as { activePolls: number, requests: Record<string, number> }
  t.equal(stats.activePolls, 3)
  t.equal(stats.requests.events, 3)
  em.agentReply(TOKEN, 'u', 'all of you')
  t.same((await Promise.all(polls)).map(p => texts(p.json)), [['all of you'], ['all of you'], ['all of you']])
})

t.test('a bad ts or a missing clientId is a 400', async t => {
  const em = await start(t)
  for (const query of ['clientId=u&ts=abc', 'clientId=u&ts=', 'ts=0', 'clientId=']) {
    const { status, json } = await poll(em, query)
    t.equal(status, 400, query)
    t.equal(json.error, 'request.invalid')
  }
})

t.test('clockOffsetMs shifts every upstream timestamp', async t => {
  const hour = 3_600_000
  const em = await start(t, { holdMs: 200, clockOffsetMs: -hour })
  const sent = await (await fetch(`${em.url}/${TOKEN}?clientId=u&query=hi`)).json() as { timestamp: string }
  const skew = Date.now() - Date.parse(`${sent.timestamp}Z`)
  t.ok(skew >= hour && skew < hour + 5_000, `the upstream is an hour behind (${skew} ms)`)
  const reply = em.agentReply(TOKEN, 'u', 'from the past')
  t.same((await poll(em, `clientId=u&ts=${Date.now()}&cid=ours`)).json.events, [], 'our clock is no good as ts')
  t.same(texts((await poll(em, `clientId=u&ts=${msOf(reply)}`)).json), ['from the past'], 'the upstream\'s own time is')
})
