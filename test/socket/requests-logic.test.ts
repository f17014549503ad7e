import t from 'tap'
import { BridgeError, ErrorCode } from '../../dist/socket/errors.js'
import { Requests } from '../../dist/socket/requests.js'
import type { UpstreamCall } from '../../dist/upstream/calls.js'
import type { ChatApi } from '../../dist/upstream/chat-api.js'

// Requests on their own, over an upstream stand-in: one result per id, resends answered from the cache,
// the sends of a client one at a time, and failures that a retry could change never kept.

interface Stand { api: ChatApi, calls: UpstreamCall[], answer: (fn: (c: UpstreamCall) => Promise<unknown>) => void }

function upstream (): Stand {
  const calls: UpstreamCall[] = []
  let respond = async (_c: UpstreamCall): Promise<unknown> => ({ ok: 1 })
  const api = { call: async (c: UpstreamCall) => { calls.push(c); return await respond(c) } } as unknown as ChatApi
  return { api, calls, answer: (fn) => { respond = fn } }
}

function requests (s: Stand): Requests {
  return new Requests({ apis: new Map([['default', s.api]]), resultCacheMs: 60_000 })
}

const ctx = { channel: 'default', clientId: 'c1', cid: 'x' }

t.test('a resent id gets the same result without a second upstream call; results are objects', async (t) => {
  const s = upstream()
  const r = requests(s)
  const first = await r.handle(ctx, { type: 'send', id: 'm1', query: 'hello' })
  const again = await r.handle(ctx, { type: 'send', id: 'm1', query: 'hello' })
  t.same(first, { type: 'result', id: 'm1', ok: true, result: { ok: 1 } })
  t.same(again, first)
  t.equal(s.calls.length, 1)
  await r.handle({ ...ctx, clientId: 'c2' }, { type: 'send', id: 'm1', query: 'hello' })
  t.equal(s.calls.length, 2, 'the same id of another client is another request')
})

t.test('the sends of one client go upstream one at a time, in order', async (t) => {
  const s = upstream()
  let running = 0
  let most = 0
  s.answer(async (c) => {
    most = Math.max(most, ++running)
    await new Promise((resolve) => setTimeout(resolve, 5))
    running--
    return { at: c.body }
  })
  const r = requests(s)
  const results = await Promise.all(['a', 'b', 'c'].map(async (q, i) => await r.handle(ctx, { type: 'send', id: `s${i}`, query: q })))
  t.equal(most, 1)
  t.same(results.map((x) => x.ok), [true, true, true])
  t.same(s.calls.map((c) => (c.body as { query?: string }).query), ['a', 'b', 'c'])
})

t.test('a failure that a retry could change is not kept; one that it could not is', async (t) => {
  const s = upstream()
  let status = 503
  s.answer(async () => {
    if (status === 503) throw new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, 'down', { status })
    throw new BridgeError(ErrorCode.UPSTREAM_REJECTED, 'no', { status })
  })
  const r = requests(s)
  const down = await r.handle(ctx, { type: 'send', id: 'm', query: 'x' })
  t.match(down, { ok: false, error: { code: ErrorCode.UPSTREAM_UNAVAILABLE, status: 503 } })
  status = 400
  const refused = await r.handle(ctx, { type: 'send', id: 'm', query: 'x' })
  t.match(refused, { ok: false, error: { code: ErrorCode.UPSTREAM_REJECTED, status: 400 } }, 'the resend ran again')
  status = 503
  t.same(await r.handle(ctx, { type: 'send', id: 'm', query: 'x' }), refused, 'and its answer is kept')
  t.equal(s.calls.length, 2)
})

t.test('a 429 is handed to the client with its Retry-After and never kept', async (t) => {
  const s = upstream()
  s.answer(async () => { throw new BridgeError(ErrorCode.UPSTREAM_REJECTED, 'slow down', { status: 429, retryAfterMs: 2000 }) })
  const r = requests(s)
  const first = await r.handle(ctx, { type: 'getState', id: 'g' })
  t.match(first, { ok: false, error: { status: 429, retryAfterMs: 2000 } })
  await r.handle(ctx, { type: 'getState', id: 'g' })
  t.equal(s.calls.length, 2)
})

t.test('after shutdown nothing new goes upstream', async (t) => {
  const s = upstream()
  const r = requests(s)
  r.shutdown()
  t.match(await r.handle(ctx, { type: 'send', id: 'late', query: 'x' }), { ok: false, error: { code: ErrorCode.SHUTTING_DOWN } })
  t.equal(s.calls.length, 0)
})
