import t, { type Test } from 'tap'
import type { ChatResponse } from '../../dist/emulator/bot.js'
import type { HistoryEntry } from '../../dist/emulator/channel-store.js'
import { PROFILES, parseProfiles, startEmulator, type Emulator, type EmulatorOptions, type ProfileName, type UpstreamEvent } from '../../dist/emulator/index.js'
import { chatRoutes } from '../../dist/emulator/route-table.js'

const TOKEN = 'demo-token'
const WITH_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/
const SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/

async function start (t: Test, profiles: ProfileName[], options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator({ holdMs: 10_000, ...options, profiles })
  t.teardown(() => emulator.close())
  return emulator
}

interface Events { events: UpstreamEvent[] }
interface Entries { totalCount: number, messages: HistoryEntry[] }
interface Answer<T> { status: number, type: string, text: string, json: T }

/** A request and its answer; the body is parsed when it is JSON. */
async function call<T> (url: string, body?: unknown): Promise<Answer<T>> {
  const res = await fetch(url, body === undefined
    ? {}
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const type = res.headers.get('content-type') ?? ''
  const text = await res.text()
  return { status: res.status, type, text, json: type.startsWith('application/json') ? JSON.parse(text) : undefined }
}

const poll = (em: Emulator, query: string): Promise<Answer<Events>> => call<Events>(`${em.url}/${TOKEN}/events?${query}`)
const send = async (em: Emulator, body: Record<string, unknown>): Promise<ChatResponse> =>
  (await call<ChatResponse>(`${em.url}/${TOKEN}`, { clientId: 'u', ...body })).json

/** Resolves once `condition` holds; a bug that never lets it hold fails the test instead of hanging it. */
async function until (condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('waited 5 s in vain')
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

/** Waits for the clock to pass `ms`, so that what comes next is stamped later. */
async function past (ms: number): Promise<void> {
  await until(() => Date.now() > ms)
}

/** Epoch ms of a zone-less upstream timestamp. */
const msOf = (timestamp: unknown): number => Date.parse(`${String(timestamp)}Z`)
const texts = (answer: Answer<Events>): unknown[] => answer.json.events.map(e => e.event.text)
const types = (answer: Answer<Events>): string[] => answer.json.events.map(e => e.type)

t.test('parseProfiles reads a comma-separated list and names a bad entry', async t => {
  t.same(Object.keys(PROFILES), [
    'no-hold', 'timeout-408', 'exclusive-ts', 'whole-seconds', 'second-stamps', 'zoned', 'late-stamps',
    'unscoped-cid', 'not-found-token', 'entry-history', 'epoch-times', 'outer-times', 'untimed-state'
  ])
  t.same(parseProfiles(' no-hold , exclusive-ts,,no-hold '), ['no-hold', 'exclusive-ts'], 'trimmed, empty items and repeats dropped')
  t.same(parseProfiles(''), [])
  t.throws(() => parseProfiles('no-hold,sometimes-hold'), { message: /"sometimes-hold".*no-hold, timeout-408, .*, untimed-state$/ })
  await t.rejects(startEmulator({ profiles: ['sometimes-hold' as ProfileName] }), /unknown emulator profile: sometimes-hold/)
})

t.test('no-hold: a poll with nothing to return is answered at once, never held', async t => {
  const em = await start(t, ['no-hold'], { holdMs: 3000 })
  const empty = await poll(em, 'clientId=u')
  t.equal(empty.status, 200)
  t.same(empty.json, { events: [] })
  em.agentReply(TOKEN, 'u', 'hi')
  t.same(texts(await poll(em, 'clientId=u')), ['hi'], 'the cursor reads on')
  t.same((await poll(em, 'clientId=u')).json, { events: [] })
  t.equal(em.maxActivePolls(TOKEN, 'u'), 0, 'no poll was ever held')
})

t.test('timeout-408: an expired hold is a 408 in the error shape, and moves no cursor', async t => {
  const em = await start(t, ['timeout-408'], { holdMs: 150 })
  const held = poll(em, 'clientId=u')
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  em.publish(TOKEN, 'u', 'stateUpdate', { state: { page: 1 } })
  const expired = await held
  t.equal(expired.status, 408)
  t.match(expired.type, /^application\/json/)
  t.same(expired.json, { error: 'request.timeout', message: 'Request timeout' })
  const next = await poll(em, 'clientId=u&all=true')
  t.equal(next.status, 200, 'a poll that finds something is answered as usual')
  t.same(types(next), ['stateUpdate'], 'the expired poll left the cursor before what it did not take')
})

t.test('exclusive-ts: an event at exactly ts is left out; appends are answered one by one', async t => {
  const em = await start(t, ['exclusive-ts'])
  const first = em.agentReply(TOKEN, 'u', 'first')
  await past(msOf(first.event.timestamp))
  const second = em.agentReply(TOKEN, 'u', 'second')
  t.same(texts(await poll(em, `clientId=u&ts=${msOf(first.event.timestamp)}`)), ['second'])

  const last = msOf(second.event.timestamp)
  const held = poll(em, `clientId=u&ts=${last}`)
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  await past(last)
  em.agentReply(TOKEN, 'u', 'third')
  em.agentReply(TOKEN, 'u', 'fourth')
  t.same(texts(await held), ['third'], 'the first append woke the poll alone')
})

t.test('whole-seconds: times are kept, compared and printed in whole seconds', async t => {
  const em = await start(t, ['whole-seconds'], { holdMs: 100 })
  const sent = await send(em, { query: 'hi' })
  t.match(sent.timestamp, SECONDS)
  const reply = em.agentReply(TOKEN, 'u', 'agent')
  t.match(reply.event.timestamp, SECONDS)
  const second = msOf(reply.event.timestamp)
  t.equal(second % 1000, 0)
  t.same(texts(await poll(em, `clientId=u&ts=${second}`)), ['agent'])
  t.same((await poll(em, `clientId=u&ts=${second + 1}`)).json, { events: [] }, 'stored at the second, the event is before second + 1 ms')
  const history = await call<{ messages: Array<{ timestamp: string }> }>(`${em.url}/${TOKEN}/client/u/history`)
  for (const m of history.json.messages) t.match(m.timestamp, SECONDS)
})

t.test('second-stamps: times are printed without a fraction but compared to the millisecond', async t => {
  const em = await start(t, ['second-stamps'])
  const before = Date.now()
  const sent = await send(em, { query: 'hi' })
  t.match(sent.timestamp, SECONDS)
  const events = await poll(em, `clientId=u&all=true&ts=${before}`)
  t.same(types(events), ['clientRequest', 'botResponse'], 'kept to the millisecond: not before ts although printed so')
  for (const e of events.json.events) t.equal(e.event.timestamp, sent.timestamp)
  const history = await call<{ messages: Array<{ timestamp: string }> }>(`${em.url}/${TOKEN}/client/u/history`)
  t.same(history.json.messages.map(m => m.timestamp), [sent.timestamp])
  t.match(em.agentReply(TOKEN, 'u', 'agent').event.timestamp, SECONDS)
})

t.test('zoned: times are local at +03:00 with the offset, the same instant', async t => {
  const em = await start(t, ['zoned'])
  const before = Date.now()
  const sent = await send(em, { query: 'hi' })
  t.match(sent.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+03:00$/)
  const at = Date.parse(sent.timestamp)
  t.ok(at >= before && at <= Date.now(), 'read with its offset, it is now')
  t.equal(Number(sent.timestamp.slice(11, 13)), (new Date(at).getUTCHours() + 3) % 24, 'three hours ahead of UTC')
  const events = await poll(em, `clientId=u&all=true&ts=${at}`)
  t.same(events.json.events.map(e => e.event.timestamp), [sent.timestamp, sent.timestamp])
  const history = await call<{ messages: Array<{ timestamp: string }> }>(`${em.url}/${TOKEN}/client/u/history`)
  t.same(history.json.messages.map(m => m.timestamp), [sent.timestamp])
})

t.test('late-stamps: the answer is stored later with the request\'s stamp, and ts still finds it', async t => {
  const em = await start(t, ['late-stamps'], { lateStampMs: 1000 })
  const sent = await send(em, { query: 'hi' })
  const asked = msOf(sent.timestamp)
  t.same(types(await poll(em, 'clientId=u&all=true&ts=0')), ['clientRequest'], 'the sync answer came before its event')

  await past(asked)
  const agent = em.agentReply(TOKEN, 'u', 'in between')
  const held = poll(em, `clientId=u&cid=late&all=true&ts=${asked}`)
  await until(() => em.activePolls(TOKEN, 'u', 'late') === 1)
  const late = (await held).json.events
  t.same(late.map(e => [e.type, e.event.questionId, e.event.timestamp]), [['botResponse', sent.questionId, sent.timestamp]],
    'a held poll at the request\'s time is woken by the late append')

  t.same(types(await poll(em, `clientId=u&all=true&ts=${msOf(agent.event.timestamp)}`)), ['agentResponse'],
    'stored after the agent reply, the answer is still older than it')
  t.same(types(await poll(em, `clientId=u&all=true&ts=${asked}`)), ['clientRequest', 'agentResponse', 'botResponse'], 'in storage order')
})

t.test('unscoped-cid: a cid hides nothing, and every cid shares the client\'s cursor', async t => {
  const em = await start(t, ['unscoped-cid'])
  em.agentReply(TOKEN, 'u', 'old')
  t.same(texts(await poll(em, 'clientId=u&cid=c1&ts=0')), ['old'], 'older than the cid, still returned')

  const a = poll(em, 'clientId=u&cid=a')
  await until(() => em.activePolls(TOKEN, 'u', 'a') === 1)
  em.agentReply(TOKEN, 'u', 'one')
  t.same(texts(await a), ['one'])
  em.agentReply(TOKEN, 'u', 'two')
  t.same(texts(await poll(em, 'clientId=u&cid=b')), ['two'], 'a new cid reads on from the client\'s cursor')
  const again = poll(em, 'clientId=u&cid=a')
  await until(() => em.activePolls(TOKEN, 'u', 'a') === 1)
  em.agentReply(TOKEN, 'u', 'three')
  t.same(texts(await again), ['three'], 'cid b took "two" from cid a')
})

t.test('not-found-token: an unknown token is a text/plain 404 on every Chat API route', async t => {
  const em = await start(t, ['not-found-token'])
  for (const { method, url } of Object.values(chatRoutes)) {
    const path = url.replace(':token', 'nope').replace(':clientId', 'u').replace(':questionId', 'q')
    const answer = await call(`${em.origin}${path}`, method === 'POST' ? {} : undefined)
    t.equal(answer.status, 404, `${method} ${url}`)
    t.match(answer.type, /^text\/plain/)
    t.equal(answer.text, 'ChannelChat config not found for token nope and channel CHATAPI')
  }
  t.equal((await call(`${em.url}/${TOKEN}`, { clientId: 'u', query: 'x' })).status, 200, 'a known token works')
  t.throws(() => em.publish('nope', 'u', 'x'), /ChannelChat config not found for token nope/)
})

t.test('entry-history: one entry per message, fromTimestamp/toTimestamp/limit and a totalCount', async t => {
  const em = await start(t, ['entry-history'])
  const hello = await send(em, { query: 'hello' })
  await past(msOf(hello.timestamp))
  const file = await send(em, { event: 'fileEvent', data: { size: 3 } })
  await past(msOf(file.timestamp))
  const bare = await send(em, { event: 'ping' })
  await past(msOf(bare.timestamp))
  const agent = em.agentReply(TOKEN, 'u', 'an agent writes')
  await call(`${em.url}/${TOKEN}/client/u/message/${hello.questionId}/status`, { status: 'READ' })

  const base = `${em.url}/${TOKEN}/client/u/history`
  const all = (await call<Entries>(base)).json
  const entry = { status: null, eventData: null, replies: null }
  t.same(all, {
    totalCount: 7,
    messages: [
      { ...entry, questionId: hello.questionId, author: 'CLIENT', textMessage: 'hello', timestamp: hello.timestamp },
      { ...entry, questionId: hello.questionId, author: 'BOT', textMessage: hello.data.answer, status: 'READ', replies: hello.data.replies, timestamp: hello.timestamp },
      { ...entry, questionId: file.questionId, author: 'CLIENT', textMessage: null, eventData: { event: 'fileEvent', data: { size: 3 } }, timestamp: file.timestamp },
      { ...entry, questionId: file.questionId, author: 'BOT', textMessage: file.data.answer, status: 'SENT', replies: file.data.replies, timestamp: file.timestamp },
      { ...entry, questionId: bare.questionId, author: 'CLIENT', textMessage: null, eventData: { event: 'ping', data: null }, timestamp: bare.timestamp },
      { ...entry, questionId: bare.questionId, author: 'BOT', textMessage: bare.data.answer, status: 'SENT', replies: bare.data.replies, timestamp: bare.timestamp },
      {
        ...entry,
        questionId: agent.event.questionId,
        author: 'OPERATOR',
        textMessage: 'an agent writes',
        status: 'SENT',
        replies: (agent.event.data as { replies: unknown[] }).replies,
        timestamp: agent.event.timestamp
      }
    ]
  })

  const fileAt = msOf(file.timestamp)
  const ids = (entries: Entries): unknown[] => entries.messages.map(m => [m.author, m.questionId])
  const from = (await call<Entries>(`${base}?fromTimestamp=${fileAt}`)).json
  t.same(ids(from), ids(all).slice(2))
  t.equal(from.totalCount, 5)
  const span = (await call<Entries>(`${base}?fromTimestamp=${fileAt}&toTimestamp=${fileAt}`)).json
  t.same(ids(span), ids(all).slice(2, 4), 'both bounds inclusive')
  const limited = (await call<Entries>(`${base}?limit=2`)).json
  t.same(ids(limited), ids(all).slice(5), 'the most recent entries')
  t.equal(limited.totalCount, 7, 'counted before the limit')
  t.equal((await call<Entries>(`${base}?from=${fileAt}&to=${fileAt}`)).json.totalCount, 7, 'from and to are not its names')
  t.same((await call<Entries>(`${em.url}/${TOKEN}/client/nobody/history`)).json, { totalCount: 0, messages: [] })
  t.equal((await call(`${base}?fromTimestamp=yesterday`)).status, 400)
})

t.test('entry-history: an async request is placed at its own time, before what came while it waited', async t => {
  const em = await start(t, ['entry-history'], { asyncDelayMs: 300 })
  const { questionId } = (await call<{ questionId: string }>(`${em.url}/${TOKEN}/async`, { clientId: 'u', query: 'later' })).json
  const [request] = (await poll(em, 'clientId=u&all=true&ts=0')).json.events
  await past(msOf(request?.event.timestamp))
  em.agentReply(TOKEN, 'u', 'meanwhile')
  const base = `${em.url}/${TOKEN}/client/u/history`
  // Nothing tells when the async answer is kept; look until it is.
  let history = (await call<Entries>(base)).json
  while (history.totalCount < 3) {
    await new Promise(resolve => setTimeout(resolve, 10))
    history = (await call<Entries>(base)).json
  }
  t.same(history.messages.map(m => m.author), ['CLIENT', 'OPERATOR', 'BOT'])
  t.same(history.messages[0], { questionId, textMessage: 'later', author: 'CLIENT', status: null, eventData: null, replies: null, timestamp: request?.event.timestamp })
})

t.test('epoch-times: event timestamps are epoch-millisecond numbers', async t => {
  const em = await start(t, ['epoch-times'])
  const sent = await send(em, { query: 'hi' })
  t.match(sent.timestamp, WITH_MS, 'a send answer keeps its ISO time')
  const events = await poll(em, 'clientId=u&all=true&ts=0')
  t.same(events.json.events.map(e => e.event.timestamp), [msOf(sent.timestamp), msOf(sent.timestamp)])
  const reply = em.agentReply(TOKEN, 'u', 'agent')
  t.type(reply.event.timestamp, 'number')
  t.same(texts(await poll(em, `clientId=u&ts=${String(reply.event.timestamp)}`)), ['agent'], 'usable as ts as it is')
})

t.test('outer-times: the time is on the outer element, null inside', async t => {
  const em = await start(t, ['outer-times'])
  const sent = await send(em, { query: 'hi' })
  const events = (await poll(em, 'clientId=u&all=true&ts=0')).json.events
  t.equal(events.length, 2)
  for (const e of events) {
    t.same(Object.keys(e), ['type', 'timestamp', 'event'])
    t.equal(e.timestamp, sent.timestamp)
    t.equal(e.event.timestamp, null)
  }
  const both = await start(t, ['outer-times', 'epoch-times'])
  const reply = both.agentReply(TOKEN, 'u', 'agent')
  t.type(reply.timestamp, 'number', 'with epoch-times the outer time is a number')
  t.equal(reply.event.timestamp, null)
})

t.test('untimed-state: stateUpdate events carry no timestamp, others do', async t => {
  const em = await start(t, ['untimed-state'])
  const held = poll(em, 'clientId=u&all=true')
  await until(() => em.activePolls(TOKEN, 'u') === 1)
  await call(`${em.url}/${TOKEN}/client/u/state`, { page: 2 })
  const [state] = (await held).json.events
  t.match(state, { type: 'stateUpdate', event: { state: { page: 2 } } })
  t.notOk('timestamp' in (state?.event ?? {}), 'no timestamp field at all')
  t.notOk('timestamp' in em.publish(TOKEN, 'u', 'stateUpdate', { state: {}, timestamp: 'mine' }).event, 'not even one given by hand')
  t.match(em.agentReply(TOKEN, 'u', 'agent').event.timestamp, WITH_MS)
})

t.test('no-hold with exclusive-ts: polling from the last event\'s time answers empty at once', async t => {
  const em = await start(t, ['no-hold', 'exclusive-ts'], { holdMs: 3000 })
  const last = em.agentReply(TOKEN, 'u', 'last')
  const ts = msOf(last.event.timestamp)
  t.same((await poll(em, `clientId=u&ts=${ts}`)).json, { events: [] }, 'neither the last event again nor a hold')
  await past(ts)
  em.agentReply(TOKEN, 'u', 'next')
  t.same(texts(await poll(em, `clientId=u&ts=${ts}`)), ['next'])
  t.equal(em.maxActivePolls(TOKEN, 'u'), 0)
})
