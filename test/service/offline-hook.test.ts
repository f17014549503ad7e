import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import t, { type Test } from 'tap'
import { startBridge, TOKEN, type Harness } from '../fixtures/bridge.js'
import type { Frame } from '../fixtures/ws-client.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startEmulator } from '../../src/emulator/index.js'

const SECRET = 'webhook-secret-for-tests-0123'
const HOOK_SECRET = 'offline-hook-secret-0123456789'

interface HookCall { headers: IncomingHttpHeaders, raw: string, body: { channel: string, clientId: string, event: Record<string, unknown>, id: string, at: number } }

/**
 * The operator's hook: a real HTTP server that records each post and answers
 * with the next status of its script (200 once the script is used up).
 */
async function startHook (t: Test, statuses: number[] = []): Promise<{ url: string, calls: HookCall[], next: () => Promise<HookCall> }> {
  const calls: HookCall[] = []
  const waiters: Array<(c: HookCall) => void> = []
  let seen = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const call = { headers: req.headers, raw, body: JSON.parse(raw) as HookCall['body'] }
      calls.push(call)
      res.writeHead(statuses.shift() ?? 200).end()
      waiters.shift()?.(call)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const next = async (): Promise<HookCall> => {
    const k = seen++
    if (calls[k] !== undefined) return calls[k]
    return await new Promise((resolve) => waiters.push(resolve))
  }
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/push`, calls, next }
}

async function withHook (t: Test, statuses: number[] = []): Promise<Harness & { webhook: string, hook: Awaited<ReturnType<typeof startHook>> }> {
  const hook = await startHook(t, statuses)
  const h = await startBridge(t, {
    WEBHOOK_SECRET: SECRET,
    OFFLINE_HOOK_URL: hook.url,
    OFFLINE_HOOK_SECRET: HOOK_SECRET,
    // Short retries, so that a test of them awaits the hook's requests and no more.
    BACKOFF_BASE_MS: '10',
    BACKOFF_MAX_MS: '40'
  })
  return Object.assign(h, { webhook: `${h.httpUrl}/v1/webhook/default/${SECRET}`, hook })
}

async function deliver (url: string, objects: unknown[]): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(objects), headers: { 'content-type': 'application/json' } })
  return { status: res.status, ...(await res.json() as Record<string, unknown>) }
}

const reply = (clientId: string, questionId: string, text: string): Record<string, unknown> =>
  ({ clientId, questionId, timestamp: '2026-11-24T10:00:00.000', data: { replies: [{ type: 'text', text }] }, token: TOKEN, note: `sent with ${TOKEN}` })

function signedRight (call: HookCall): boolean {
  const timestamp = call.headers['x-chatapi-bridge-timestamp'] as string
  const want = `sha256=${createHmac('sha256', HOOK_SECRET).update(`${timestamp}.${call.raw}`).digest('hex')}`
  const got = String(call.headers['x-chatapi-bridge-signature'])
  return got.length === want.length && timingSafeEqual(Buffer.from(got), Buffer.from(want))
}

async function hookCount (h: Harness, result: string): Promise<number> {
  const text = await h.app.bridge.metrics?.registry.getSingleMetricAsString('bridge_offline_hook_total') ?? ''
  const m = new RegExp(`result="${result}"} (\\d+)`).exec(text)
  return m === null ? 0 : Number(m[1])
}

/**
 * Resolves once the counter reaches `n`: the bridge counts a post when it has
 * read the hook's answer, after the hook saw the request, and no event says
 * when. Polls the in-process metric every few ms, as `until` does.
 */
async function counted (h: Harness, result: string, n: number): Promise<number> {
  const started = Date.now()
  let value = await hookCount(h, result)
  while (value < n && Date.now() - started < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    value = await hookCount(h, result)
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
