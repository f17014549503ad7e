import t, { type Test } from 'tap'
import type { ChatResponse } from '../../dist/emulator/bot.js'
import type { ErrorBody } from '../../dist/emulator/emulator-error.js'
import { startEmulator, type Emulator, type EmulatorOptions, type UpstreamEvent } from '../../dist/emulator/index.js'

async function start (t: Test, options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator(options)
  t.teardown(() => emulator.close())
  return emulator
}

/** A request and its JSON answer, typed as the caller expects it to be. */
async function call<T = ChatResponse> (url: string, body?: unknown, init: RequestInit = {}): Promise<{ status: number, json: T }> {
  const res = await fetch(url, body === undefined
    ? init
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init })
  const text = await res.text()
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const UPSTREAM_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/

t.test('a sync send answers the documented shape, token and cid echoed', async t => {
  const em = await start(t)
  const { status, json } = await call(`${em.url}/demo-token`, { clientId: 'u-1', query: 'hello <there>', cid: 'tab-1' })
  t.equal(status, 200)
  t.equal(json.token, 'demo-token')
  t.equal(json.clientId, 'u-1')
  t.equal(json.cid, 'tab-1')
  t.match(json.questionId, UUID)
  t.match(json.timestamp, UPSTREAM_TS)
  t.equal(json.blockForm, false)
  t.equal(json.data.nlpClass, '/CatchAll')
  t.type(json.data.confidence, 'number')
  t.equal(json.data.newSessionStarted, true, 'the first turn starts a session')
  t.equal(json.data.endSession, false)
  t.same(json.data.debugData, [])
  const [said, hint] = json.data.replies
  t.equal(said?.text, 'You said: hello <there>')
  t.equal(said?.markup, 'You said: <b>hello &#60;there&#62;</b>', 'markup escapes the query')
  t.equal(json.data.answer, `${String(said?.text)}\n\n${String(hint?.text)}`, 'answer joins text replies with a blank line')
  for (const reply of json.data.replies) t.type(reply.state, 'string')

  const again = await call(`${em.url}/demo-token`, { clientId: 'u-1', query: 'again' })
  t.equal(again.json.data.newSessionStarted, false)
  t.notOk('cid' in again.json, 'no cid is echoed when none was sent')
})

t.test('the upstream timestamp is UTC without a zone', async t => {
  const em = await start(t)
  const before = Date.now()
  const { json } = await call(`${em.url}/demo-token`, { clientId: 'u-1', query: 'hi' })
  const at = Date.parse(json.timestamp + 'Z')
  t.ok(at >= before && at <= Date.now(), 'read as UTC, it is now')
})

t.test('a send appends clientRequest and botResponse events that echo the token', async t => {
  const em = await start(t)
  const sent = await call(`${em.url}/demo-token`, { clientId: 'u-1', event: 'fileEvent', data: { size: 3 }, cid: 'c' })
  t.match(sent.json.data.answer, /fileEvent/, 'an event gets a reply naming it')
  const { json } = await call<{ events: UpstreamEvent[] }>(`${em.url}/demo-token/events?clientId=u-1&ts=0&all=true`)
  t.same(json.events.map(e => e.type), ['clientRequest', 'botResponse'])
  const [request, response] = json.events
  t.same(request?.event, {
    questionId: sent.json.questionId, cid: 'c', event: 'fileEvent', data: { size: 3 }, token: 'demo-token', timestamp: sent.json.timestamp
  })
  t.same(response?.event, {
    questionId: sent.json.questionId, cid: 'c', data: sent.json.data, token: 'demo-token', clientId: 'u-1', timestamp: sent.json.timestamp
  })
})

t.test('the GET form behaves as the POST form', async t => {
  const em = await start(t)
  const byQuery = await call(`${em.url}/demo-token?clientId=u-2&query=buttons&cid=x`)
  t.equal(byQuery.status, 200)
  t.equal(byQuery.json.cid, 'x')
  t.same(byQuery.json.data.replies[1], { type: 'buttons', buttons: [{ text: 'Yes' }, { text: 'No' }], state: '/buttons' })
  const byEvent = await call(`${em.url}/demo-token?clientId=u-2&event=start`)
  t.match(byEvent.json.data.answer, /start/)
  t.same(em.requests.map(r => r.route), ['sendGet', 'sendGet'])
})

t.test('an unknown token is a 401 in the error shape, on every route', async t => {
  const em = await start(t, { tokens: ['a', 'b'] })
  t.same(em.tokens, ['a', 'b'])
  const urls = [
    [`${em.url}/nope`, { clientId: 'u', query: 'x' }],
    [`${em.url}/nope?clientId=u&query=x`],
    [`${em.url}/nope/events?clientId=u`],
    [`${em.url}/nope/client/u/history`],
    [`${em.origin}/operator/nope/agent-reply`, { clientId: 'u', text: 'x' }]
  ] as const
  for (const [url, body] of urls) {
    const { status, json } = await call<ErrorBody>(url, body)
    t.equal(status, 401, url)
    t.equal(json.error, 'channel.unauthorized')
    t.type(json.message, 'string')
  }
  t.equal((await call(`${em.url}/b`, { clientId: 'u', query: 'x' })).status, 200, 'every listed token works')
  t.throws(() => em.publish('nope', 'u', 'x'), /unknown channel token/, 'the in-process API checks tokens too')
})

t.test('a bad request is a 400 that says what is wrong', async t => {
  const em = await start(t)
  const cases: Array<[unknown, RegExp]> = [
    [{ query: 'x' }, /clientId/],
    [{ clientId: 7, query: 'x' }, /clientId/],
    [{ clientId: 'u' }, /query or event/],
    [{ clientId: 'u', query: 'x', event: 'y' }, /query or event/],
    [{ clientId: 'u', query: 3 }, /query/],
    [{ clientId: 'u', event: 'e', data: 'flat' }, /data/]
  ]
  for (const [body, message] of cases) {
    const { status, json } = await call<ErrorBody>(`${em.url}/demo-token`, body)
    t.equal(status, 400, JSON.stringify(body))
    t.equal(json.error, 'request.invalid')
    t.match(json.message, message)
  }
  const malformed = await call<ErrorBody>(`${em.url}/demo-token`, undefined, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"clientId":' })
  t.equal(malformed.status, 400)
  t.equal(malformed.json.error, 'request.malformed')
  const text = await call<ErrorBody>(`${em.url}/demo-token`, undefined, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' })
  t.equal(text.status, 415, 'only JSON bodies are taken')
  t.equal(text.json.error, 'request.unsupported')
  t.equal(em.requests.at(-1)?.route, 'send', 'a request that fails before validation is still recorded')
  const missing = await call(`${em.url}/demo-token?query=x`)
  t.equal(missing.status, 400)
})

t.test('Fastify\'s own 404 takes the error shape too', async t => {
  const em = await start(t)
  const { status, json } = await call<ErrorBody>(`${em.url}/demo-token/nowhere`)
  t.equal(status, 404)
  t.same(Object.keys(json).sort(), ['error', 'message'])
  t.equal(json.error, 'route.not.found')
})

t.test('requests are recorded and announced', async t => {
  const em = await start(t)
  const seen: string[] = []
  em.on('request', r => seen.push(r.route))
  await call(`${em.url}/demo-token`, { clientId: 'u-9', query: 'x' })
  await call(`${em.url}/demo-token/events?clientId=u-9&ts=0&all=true`)
  t.same(seen, ['send', 'events'])
  const [send, events] = em.requests
  t.match(send, { method: 'POST', path: '/chatapi/demo-token', route: 'send', token: 'demo-token', clientId: 'u-9', body: { query: 'x' } })
  t.same(events?.query, { clientId: 'u-9', ts: '0', all: 'true' })
  t.type(events?.at, 'number')
})
