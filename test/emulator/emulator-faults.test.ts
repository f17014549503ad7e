import t, { type Test } from 'tap'
import { startEmulator, type Emulator, type EmulatorOptions, type UpstreamEvent } from '../../dist/emulator/index.js'

const TOKEN = 'demo-token'

async function start (t: Test, options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator({ holdMs: 10_000, ...options })
  t.teardown(() => emulator.close())
  return emulator
}

function send (em: Emulator, init: RequestInit = {}): Promise<Response> {
  return fetch(`${em.url}/${TOKEN}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: 'u', query: 'hi' }), ...init
  })
}

const events = (em: Emulator, init: RequestInit = {}): Promise<Response> =>
  fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0&all=true`, init)

async function historyLength (em: Emulator): Promise<number> {
  const { messages } = await (await fetch(`${em.url}/${TOKEN}/client/u/history`)).json() as { messages: unknown[] }
  return messages.length
}

t.test('status: the error shape, Retry-After, and no side effect; then back to normal', async t => {
  const em = await start(t)
  em.faults.add({ route: 'send', kind: 'status', status: 429, retryAfter: 2 })
  t.equal(em.faults.pending, 1)
  const res = await send(em)
  t.equal(res.status, 429)
  t.equal(res.headers.get('retry-after'), '2')
  t.same(await res.json(), { error: 'fault.injected', message: 'fault injected: status 429' })
  t.equal(await historyLength(em), 0, 'the faulted request did nothing')
  t.equal(em.faults.pending, 0)
  t.equal((await send(em)).status, 200, 'count defaults to one')
  em.faults.add({ kind: 'status' })
  t.equal((await fetch(`${em.url}/${TOKEN}/client/u/history`)).status, 503, 'any route, 503 by default')
})

t.test('html: a proxy\'s 502 page', async t => {
  const em = await start(t)
  em.faults.add({ kind: 'html' })
  const res = await send(em)
  t.equal(res.status, 502)
  t.match(res.headers.get('content-type'), /text\/html/)
  t.match(await res.text(), /^<!DOCTYPE html>/)
})

t.test('notJson and badShape: a 200 that the bridge cannot use', async t => {
  const em = await start(t)
  em.faults.add({ route: 'send', kind: 'notJson' })
  const text = await send(em)
  t.equal(text.status, 200)
  t.match(text.headers.get('content-type'), /text\/plain/)
  await t.rejects(text.json(), 'the body is not JSON')

  em.faults.add({ route: 'events', kind: 'badShape' })
  em.faults.add({ route: 'send', kind: 'badShape' })
  t.same(await (await events(em)).json(), { events: 'nope' })
  t.same(await (await send(em)).json(), [])
})

t.test('truncated and reset: the connection dies mid-answer or before it', async t => {
  const em = await start(t)
  em.faults.add({ route: 'events', kind: 'truncated' })
  const cut = await events(em)
  t.equal(cut.status, 200)
  t.ok(Number(cut.headers.get('content-length')) > 0, 'a whole body is promised')
  await t.rejects(cut.text(), 'but only half of it comes')

  em.faults.add({ route: 'send', kind: 'reset' })
  await t.rejects(send(em), 'no answer at all')
  t.equal(await historyLength(em), 0)
  t.equal((await send(em)).status, 200, 'the next request is served')
})

t.test('hang: no answer until the client gives up, or the emulator closes', async t => {
  const em = await startEmulator({ holdMs: 10_000 })
  em.faults.add({ route: 'send', kind: 'hang', count: 2 })
  const abort = new AbortController()
  const first = send(em, { signal: abort.signal })
  const second = send(em)
  while (em.requests.length < 2) await new Promise(resolve => setTimeout(resolve, 2))
  abort.abort()
  await t.rejects(first, 'the client gave up')
  const started = Date.now()
  await em.close()
  t.ok(Date.now() - started < 2_000, 'close does not wait for a hung request')
  await t.rejects(second, 'closing drops it')
})

t.test('delay: the normal answer, later', async t => {
  const em = await start(t)
  em.faults.add({ route: 'send', kind: 'delay', delayMs: 150 })
  const started = Date.now()
  const res = await send(em)
  t.ok(Date.now() - started >= 140, 'held back')
  t.equal(res.status, 200)
  t.match(await res.json(), { data: { answer: /^You said: hi/ } })
})

t.test('duplicate and reorder rewrite an /events answer and only that', async t => {
  const em = await start(t)
  em.agentReply(TOKEN, 'u', 'a')
  em.agentReply(TOKEN, 'u', 'b')
  const texts = async (res: Response): Promise<unknown[]> => (await res.json() as { events: UpstreamEvent[] }).events.map(e => e.event.text)
  em.faults.add({ kind: 'duplicate' })
  t.equal((await send(em)).status, 200, 'a send is not an /events request: the fault waits')
  t.same(await texts(await fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0`)), ['a', 'a', 'b', 'b'])
  em.faults.add({ route: 'events', kind: 'reorder' })
  t.same(await texts(await fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0`)), ['b', 'a'])
  t.same(await texts(await fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0`)), ['a', 'b'])
})

t.test('count, Infinity and clear', async t => {
  const em = await start(t)
  em.faults.add({ route: 'sendGet', kind: 'status', status: 500, count: Number.POSITIVE_INFINITY })
  for (let i = 0; i < 3; i++) t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)).status, 500)
  t.equal((await send(em)).status, 200, 'other routes are untouched')
  em.faults.clear()
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)).status, 200)
  t.throws(() => em.faults.add({ kind: 'nonsense' as 'status' }), /unknown fault kind/)
  t.throws(() => em.faults.add({ kind: 'status', route: 'nowhere' as 'send' }), /unknown route/)
  t.throws(() => em.faults.add({ kind: 'status', count: 0 }), /count/)
})

t.test('the same over HTTP: POST and DELETE /operator/faults', async t => {
  const em = await start(t)
  const post = (body: unknown): Promise<Response> =>
    fetch(`${em.origin}/operator/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const added = await post({ route: 'sendGet', kind: 'status', status: 502, count: 'Infinity' })
  t.same(await added.json(), { pending: 1 })
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)).status, 502)
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)).status, 502)
  t.same(await (await fetch(`${em.origin}/operator/faults`, { method: 'DELETE' })).json(), { pending: 0 })
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=x`)).status, 200)
  for (const bad of [{ kind: 'nonsense' }, { kind: 'status', route: 'nowhere' }, { kind: 'status', count: -1 }]) {
    const res = await post(bad)
    t.equal(res.status, 400, JSON.stringify(bad))
    t.match(await res.json(), { error: 'request.invalid' })
  }
})
