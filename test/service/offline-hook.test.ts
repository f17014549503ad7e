import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { TOKEN, until } from '../fixtures/bridge.js'
import { signedWith, startHook, type HookCall, type HookRecorder, type HookScript } from '../fixtures/hook-recorder.js'
import { TestClient, type Frame } from '../fixtures/ws-client.js'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { startEmulator } from '../../dist/emulator/index.js'
import { MAX_BODY_BYTES, QUEUE_MAX } from '../../dist/webhook/offline-hook.js'

const SECRET = 'webhook-secret-for-tests-0123'
const HOOK_SECRET = 'offline-hook-secret-0123456789'

interface LogLine { level: number, msg: string, [field: string]: unknown }

interface Bridge {
  app: FastifyInstance
  webhook: string
  hook: HookRecorder
  /** The bridge's log lines at warn and above. */
  lines: LogLine[]
  /** A socket that said hello, closed with the test. */
  client: (hello?: Record<string, unknown>) => Promise<TestClient & { welcome: Record<string, unknown> }>
}

/**
 * A hook answering as `script` says, and a bridge posting to it (in front of
 * an emulator), whose warnings are recorded. Short retries by default, so that
 * a test of them awaits the hook's requests and little more.
 */
async function withHook (t: Test, script: HookScript = [], env: Record<string, string> = {}): Promise<Bridge> {
  const hook = await startHook(t, script)
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 2000 })
  t.teardown(async () => { await emulator.close() })
  const lines: LogLine[] = []
  const config = loadConfig({
    TICKET_SECRET: 'test-ticket-secret-0123456789',
    LOG_LEVEL: 'warn',
    PORT: '0',
    WEBHOOK_SECRET: SECRET,
    OFFLINE_HOOK_URL: hook.url,
    OFFLINE_HOOK_SECRET: HOOK_SECRET,
    BACKOFF_BASE_MS: '10',
    BACKOFF_MAX_MS: '40',
    ...env
  })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logStream: { write: (l) => { lines.push(JSON.parse(l) as LogLine) } } })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const sockets: TestClient[] = []
  t.teardown(() => { for (const c of sockets) c.ws.terminate() })
  const client = async (hello: Record<string, unknown> = {}): Promise<TestClient & { welcome: Record<string, unknown> }> => {
    const c = await new TestClient(`ws://127.0.0.1:${port}/v1/ws`).open()
    sockets.push(c)
    return Object.assign(c, { welcome: await c.hello(hello) })
  }
  return { app, webhook: `http://127.0.0.1:${port}/v1/webhook/default/${SECRET}`, hook, lines, client }
}

async function deliver (url: string, objects: unknown[]): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(objects), headers: { 'content-type': 'application/json' } })
  return { status: res.status, ...(await res.json() as Record<string, unknown>) }
}

const reply = (clientId: string, questionId: string, text: string): Record<string, unknown> =>
  ({ clientId, questionId, timestamp: '2026-11-24T10:00:00.000', data: { replies: [{ type: 'text', text }] }, token: TOKEN, note: `sent with ${TOKEN}` })

/** A webhook object with no token in it, so that what the hook gets is this object as it is, byte for byte. */
const plain = (clientId: string, questionId: string, text: string): Record<string, unknown> =>
  ({ clientId, questionId, timestamp: '2026-11-24T10:00:00.000', data: { replies: [{ type: 'text', text }] } })

const signedRight = (call: HookCall): boolean => signedWith(HOOK_SECRET, call)
const callsOf = (hook: HookRecorder, clientId: string): HookCall[] => hook.calls.filter((c) => c.body.clientId === clientId)
const warned = (b: Bridge, msg: string): LogLine[] => b.lines.filter((l) => l.level === 40 && l.msg === msg)

async function hookCount (b: Bridge, result: string): Promise<number> {
  const text = await b.app.bridge.metrics?.registry.getSingleMetricAsString('bridge_offline_hook_total') ?? ''
  const m = new RegExp(`result="${result}"} (\\d+)`).exec(text)
  return m === null ? 0 : Number(m[1])
}

/**
 * Resolves once the counter reaches `n`: the bridge counts a post when it has
 * read the hook's answer, after the hook saw the request, and no event says
 * when. Polls the in-process metric every few ms, as `until` does.
 */
async function counted (b: Bridge, result: string, n: number, timeoutMs = 5000): Promise<number> {
  const started = Date.now()
  let value = await hookCount(b, result)
  while (value < n && Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    value = await hookCount(b, result)
  }
  return value
}

t.test('an event for a client with no socket is posted once, signed, without the token; a retried delivery is not posted again', async (t) => {
  const h = await withHook(t)
  t.same(await deliver(h.webhook, [reply('away-1', 'q-1', 'are you there?')]), { status: 200, accepted: 1, duplicates: 0 })
  const call = await h.hook.next()
  t.ok(signedRight(call), 'the HMAC of "<timestamp>.<body>" with the secret')
  t.equal(call.headers['content-type'], 'application/json')
  t.match(call.body, { channel: 'default', clientId: 'away-1', event: { clientId: 'away-1', questionId: 'q-1', data: { replies: [{ text: 'are you there?' }] } } })
  t.type(call.body.id, 'string')
  t.type(call.body.at, 'number')
  t.notOk(call.raw.includes(TOKEN), 'the token is removed')
  t.equal(call.body.event.token, undefined)

  t.same(await deliver(h.webhook, [reply('away-1', 'q-1', 'are you there?')]), { status: 200, accepted: 0, duplicates: 1 }, 'the platform retries')
  // A later event's post proves the retry's would have come before it.
  await deliver(h.webhook, [reply('away-2', 'q-marker', 'marker')])
  const marker = await h.hook.next()
  t.equal(marker.body.clientId, 'away-2')
  t.equal(h.hook.calls.length, 2, 'one post for the first event')
  t.equal(await counted(h, 'posted', 2), 2)
})

t.test('an event for a client with an open socket goes to the socket and is not posted', async (t) => {
  const h = await withHook(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await deliver(h.webhook, [reply(clientId, 'q-here', 'you are here')])
  await a.next((f: Frame) => f.type === 'event' && JSON.stringify(f).includes('you are here'))
  await deliver(h.webhook, [reply('someone-away', 'q-marker', 'marker')])
  const first = await h.hook.next()
  t.equal(first.body.clientId, 'someone-away', 'the first post is the away client\'s')
  t.equal(h.hook.calls.length, 1)

  // Once the socket is closed, the client is away.
  a.close()
  await a.closed()
  await deliver(h.webhook, [reply(clientId, 'q-gone', 'you left')])
  const later = await h.hook.next()
  t.equal(later.body.clientId, clientId)
  t.equal(later.body.event.questionId, 'q-gone')
})

t.test('a hook that answers 503 twice and then 200 gets the event three times, with one id, and it counts as posted once', async (t) => {
  const h = await withHook(t, [503, 503])
  await deliver(h.webhook, [reply('away-r', 'q-r', 'retried')])
  const tries = [await h.hook.next(), await h.hook.next(), await h.hook.next()]
  t.same(tries.map((c) => c.body.id), [tries[0]?.body.id, tries[0]?.body.id, tries[0]?.body.id])
  t.ok(tries.every(signedRight), 'each attempt signed')
  await deliver(h.webhook, [reply('away-m', 'q-m', 'marker')])
  t.equal((await h.hook.next()).body.clientId, 'away-m')
  t.equal(h.hook.calls.length, 4, 'no attempt after the 200')
  t.equal(await counted(h, 'posted', 2), 2)
  t.equal(await hookCount(h, 'failed'), 0)
})

t.test('a 400 from the hook is not retried', async (t) => {
  const h = await withHook(t, [400])
  await deliver(h.webhook, [reply('away-x', 'q-x', 'refused')])
  t.equal((await h.hook.next()).body.clientId, 'away-x')
  await deliver(h.webhook, [reply('away-m', 'q-m', 'marker')])
  t.equal((await h.hook.next()).body.clientId, 'away-m')
  t.equal(h.hook.calls.length, 2, 'the refused event once')
  t.equal(await counted(h, 'failed', 1), 1)
})

t.test('OFFLINE_HOOK_URL needs OFFLINE_HOOK_SECRET, whose value no error shows', async (t) => {
  t.throws(() => loadConfig({ OFFLINE_HOOK_URL: 'https://push.example.com/hook' }), /OFFLINE_HOOK_SECRET/)
  try {
    loadConfig({ OFFLINE_HOOK_URL: 'https://push.example.com/hook', OFFLINE_HOOK_SECRET: 'short-secret' })
    t.fail('a short secret is refused')
  } catch (err) {
    t.match((err as Error).message, /OFFLINE_HOOK_SECRET \(12 characters, not shown\)/)
    t.notOk((err as Error).message.includes('short-secret'))
  }
})

t.test('a hook with no webhook to feed it says so at start, once', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 2000 })
  t.teardown(async () => { await emulator.close() })
  const lines: Array<{ level: number, msg: string }> = []
  const config = loadConfig({ LOG_LEVEL: 'info', OFFLINE_HOOK_URL: 'http://127.0.0.1:9/hook', OFFLINE_HOOK_SECRET: 'hook-secret-0123456789abcdef' })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logStream: { write: (l) => { lines.push(JSON.parse(l)) } } })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const warned = lines.filter((l) => l.level === 40 && l.msg.startsWith('OFFLINE_HOOK_URL is set but no webhook is'))
  t.equal(warned.length, 1)
  t.notMatch(JSON.stringify(lines), /hook-secret-0123456789abcdef/, 'the secret is in no line')
})

t.test('a 503 or 429 with Retry-After is retried no sooner than it says, and no later than BACKOFF_MAX_MS', async (t) => {
  // Retry-After in seconds, as an HTTP date, and far past the cap: each client's first post is refused so, its second answered 200.
  const first: Record<string, () => { status: number, headers: Record<string, string> }> = {
    'ra-seconds': () => ({ status: 503, headers: { 'retry-after': '1' } }),
    'ra-date': () => ({ status: 429, headers: { 'retry-after': new Date(Date.now() + 2000).toUTCString() } }),
    'ra-hour': () => ({ status: 503, headers: { 'retry-after': '3600' } })
  }
  const h = await withHook(t, (call) => callsOf(h.hook, call.body.clientId).length === 1 ? first[call.body.clientId]?.() ?? 200 : 200, { BACKOFF_MAX_MS: '1500' })
  await deliver(h.webhook, Object.keys(first).map((c) => reply(c, `q-${c}`, 'wait for it')))
  await until(() => Object.keys(first).every((c) => callsOf(h.hook, c).length >= 2), 10_000, 'a second post of each')
  const gap = (c: string): number => (callsOf(h.hook, c)[1]?.receivedAt ?? 0) - (callsOf(h.hook, c)[0]?.receivedAt ?? 0)
  // Without Retry-After, the second attempt comes within BACKOFF_BASE_MS (10 ms of jitter).
  t.ok(gap('ra-seconds') >= 990, `"Retry-After: 1" waited ${gap('ra-seconds')} ms, at least 1 s`)
  t.ok(gap('ra-seconds') < 1450, 'and not the cap')
  // The date has whole seconds: it is 1 to 2 s ahead when the bridge reads it, then capped at 1.5 s.
  t.ok(gap('ra-date') >= 990, `a 429 with an HTTP-date waited ${gap('ra-date')} ms, to that date`)
  t.ok(gap('ra-hour') >= 1490, `"Retry-After: 3600" waited ${gap('ra-hour')} ms, up to BACKOFF_MAX_MS`)
  t.ok(gap('ra-hour') < 10_000, 'and not an hour')
  t.ok(h.hook.calls.every(signedRight))
  t.equal(await counted(h, 'posted', 3), 3)
  t.equal(await hookCount(h, 'failed'), 0)
  t.equal(h.hook.calls.length, 6, 'two posts of each event')
})

t.test('a hook that hangs past OFFLINE_HOOK_TIMEOUT_MS is cut and retried, then given up; the webhook, the sockets and other posts go on', async (t) => {
  const h = await withHook(t, (call) => call.body.clientId === 'hung' ? 'hang' : 200, { OFFLINE_HOOK_TIMEOUT_MS: '600' })
  const here = await h.client({ cid: 'tab' })
  const hereId = here.welcome.clientId as string
  t.same(await deliver(h.webhook, [reply('hung', 'q-hung', 'nobody answers')]), { status: 200, accepted: 1, duplicates: 0 })
  const stuck = await h.hook.next()
  t.equal(stuck.body.clientId, 'hung')

  // While that post hangs: a delivery is answered, a socket gets its event, another away client's event is posted.
  t.same(await deliver(h.webhook, [reply(hereId, 'q-here', 'to the socket'), reply('other', 'q-other', 'to the hook')]), { status: 200, accepted: 2, duplicates: 0 })
  await here.next((f: Frame) => f.type === 'event' && JSON.stringify(f).includes('to the socket'))
  const other = await h.hook.next()
  t.equal(other.body.clientId, 'other')
  t.equal(await counted(h, 'posted', 1), 1)
  const firstCut = await stuck.cut
  t.ok(other.receivedAt < firstCut, 'the other post was answered while the first still hung')

  // Five attempts in all, each given the whole timeout, then cut by the bridge.
  await until(() => callsOf(h.hook, 'hung').length === 5, 10_000, 'five attempts')
  const attempts = callsOf(h.hook, 'hung')
  // From the attempt's start (its timestamp header) to its cut: the hook may read a post some ms after it started.
  const waited = await Promise.all(attempts.map(async (c) => await c.cut - Number(c.timestamp)))
  t.ok(waited.every((ms) => ms >= 599), `each attempt cut after the timeout, not before: ${waited.join(', ')} ms`)
  t.same(new Set(attempts.map((c) => c.body.id)).size, 1, 'one id')
  t.ok(attempts.every(signedRight), 'each attempt signed')
  t.equal(new Set(attempts.map((c) => c.timestamp)).size, 5, 'each with its own timestamp')
  t.equal(await counted(h, 'failed', 1), 1)
  const given = warned(h, 'offline hook: event not posted, given up')
  t.equal(given.length, 1, 'logged once')
  t.match(given[0], { component: 'offline-hook', clientId: 'hung', id: stuck.body.id, attempts: 5, why: 'timeout' })
  t.notMatch(JSON.stringify(h.lines), new RegExp(HOOK_SECRET), 'the secret is in no line')

  await deliver(h.webhook, [reply('marker', 'q-marker', 'marker')])
  await until(() => callsOf(h.hook, 'marker').length === 1, 5000, 'the marker\'s post')
  t.equal(callsOf(h.hook, 'hung').length, 5, 'no sixth attempt')
  t.equal(h.hook.open, 0, 'no post left open')
})

t.test('a post that hangs does not hold up the shutdown: close cuts it', async (t) => {
  const h = await withHook(t, ['hang'], { OFFLINE_HOOK_TIMEOUT_MS: '60000' })
  await deliver(h.webhook, [reply('hung', 'q-hung', 'nobody answers')])
  const stuck = await h.hook.next()
  await h.app.close()
  t.type(await stuck.cut, 'number', 'the bridge closed the connection of the post')
  t.equal(await hookCount(h, 'failed'), 0, 'a post dropped by the shutdown is not a failure')
})

t.test(`with the hook down, at most ${QUEUE_MAX} events wait and 4 are posted at once: past that the oldest waiting is dropped, counted, and logged sparingly`, async (t) => {
  const h = await withHook(t, [], { OFFLINE_HOOK_TIMEOUT_MS: '30000' })
  h.hook.hold()
  const n = QUEUE_MAX + 100
  const id = (i: number): string => `q-${String(i).padStart(4, '0')}`
  const events = Array.from({ length: n }, (_, i) => plain(id(i), `question-${id(i)}`, `event ${i}`))
  // A delivery takes at most 1,000 objects.
  t.match(await deliver(h.webhook, events.slice(0, 600)), { status: 200, accepted: 600 })
  t.match(await deliver(h.webhook, events.slice(600)), { status: 200, accepted: n - 600 })
  // 4 posts hang at the hook, 1,000 wait behind them, and each later event pushed out the oldest waiting.
  const inFlight = 4
  const dropped = n - QUEUE_MAX - inFlight
  t.equal(await counted(h, 'dropped', dropped), dropped, `${dropped} dropped`)
  await until(() => h.hook.open === inFlight, 5000, 'the posts in flight')
  t.same(h.hook.calls.map((c) => c.body.clientId), [0, 1, 2, 3].map(id), 'the first four are in flight, and no more')
  t.equal(h.hook.maxOpen, inFlight)

  const lines = warned(h, 'offline hook: event dropped')
  t.same(lines.map((l) => l.dropped), [1, 2, 4, 8, 16, 32, 64], 'logged at the first drop and at powers of two, not once per drop')
  t.match(lines[0], { component: 'offline-hook', clientId: id(inFlight), why: 'queue full' })

  // The hook is back: what waited is posted, and nothing else.
  h.hook.release()
  t.equal(await counted(h, 'posted', n - dropped, 10_000), n - dropped)
  t.equal(h.hook.calls.length, n - dropped)
  const posted = new Set(h.hook.calls.map((c) => c.body.clientId))
  const lost = events.map((e) => e.clientId as string).filter((c) => !posted.has(c))
  t.same(lost, Array.from({ length: dropped }, (_, i) => id(inFlight + i)), 'the dropped are the oldest that waited')
  t.equal(await hookCount(h, 'failed'), 0)
  t.equal(h.hook.maxOpen, inFlight, 'never more than 4 posts at once')
})

t.test(`a body over ${MAX_BODY_BYTES} bytes (UTF-8) is not posted, but dropped, counted and logged; one of exactly ${MAX_BODY_BYTES} is posted whole`, async (t) => {
  const h = await withHook(t)
  // What a body weighs besides the text: the same for clients and questions whose ids have the same length.
  await deliver(h.webhook, [plain('size-0', 'q-size-0', 'x')])
  const probe = await h.hook.next()
  const rest = Buffer.byteLength(probe.raw) - 1
  const fits = 'x'.repeat(MAX_BODY_BYTES - rest)
  const over = 'x'.repeat(MAX_BODY_BYTES - rest + 1)
  // Fewer characters than the cap, more bytes.
  const wide = 'é'.repeat(Math.ceil((MAX_BODY_BYTES - rest) / 2) + 1)
  t.ok(wide.length + rest < MAX_BODY_BYTES && Buffer.byteLength(wide) + rest > MAX_BODY_BYTES)
  t.match(await deliver(h.webhook, [plain('size-1', 'q-size-1', fits), plain('size-2', 'q-size-2', over), plain('size-3', 'q-size-3', wide), plain('size-4', 'q-size-4', 'marker')]), { status: 200, accepted: 4 })
  t.equal(await counted(h, 'posted', 3), 3)
  t.equal(await counted(h, 'dropped', 2), 2)
  const whole = callsOf(h.hook, 'size-1')[0]
  t.equal(Buffer.byteLength(whole?.raw ?? ''), MAX_BODY_BYTES, 'the largest body allowed')
  t.equal((whole?.body.event.data as { replies: Array<{ text: string }> }).replies[0]?.text, fits, 'posted whole, not cut')
  t.ok(whole !== undefined && signedRight(whole))
  t.equal(callsOf(h.hook, 'size-4').length, 1, 'the event after them is posted')
  t.same(h.hook.calls.map((c) => c.body.clientId).sort(), ['size-0', 'size-1', 'size-4'], 'neither large one is posted, whole or cut')
  const lines = warned(h, 'offline hook: event dropped')
  t.same(lines.map((l) => [l.clientId, l.why]), [['size-2', `larger than ${MAX_BODY_BYTES} bytes`], ['size-3', `larger than ${MAX_BODY_BYTES} bytes`]])
})
