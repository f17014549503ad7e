import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '../../dist/app.js'
import { loadConfig, parseChannels } from '../../dist/config.js'
import { startEmulator, type Emulator } from '../../dist/emulator/index.js'
import { within } from '../../dist/lib/deadline.js'
import { Echoes } from '../../dist/webhook/echoes.js'
import { WebhookInbox } from '../../dist/webhook/inbox.js'
import { Mailbox } from '../../dist/webhook/mailbox.js'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { TestClient, type Frame } from '../fixtures/ws-client.js'

const SECRET = 'webhook-secret-for-tests-0123'
const SALES_SECRET = 'sales-webhook-secret-0123456'
const SUPPORT_SECRET = 'support-webhook-secret-01234'
const SUPPORT_TOKEN = 'support-channel-token-0123456789'

const isWebhook = (f: Frame): boolean => f.type === 'event' && (f.event as { type: string }).type === 'webhook'
const questionOf = (f: Frame): unknown => (f.event as { event: Record<string, unknown> }).event.questionId

interface Bridge { app: FastifyInstance, port: number, emulator: Emulator }

/** An emulator for both channel tokens and a bridge over the channels `env` configures for it, both on port 0. */
async function bridge (t: Test, env: (emulatorUrl: string) => Record<string, string>, opts: Omit<AppOptions, 'channels'> = { logger: false }): Promise<Bridge> {
  const emulator = await startEmulator({ tokens: [TOKEN, SUPPORT_TOKEN], holdMs: 2000 })
  t.teardown(async () => { await emulator.close() })
  const config = loadConfig({ TICKET_SECRET: 'test-ticket-secret-0123456789', LOG_LEVEL: 'silent', ...env(emulator.url) })
  const app = await buildApp(config, { channels: parseChannels(config), ...opts })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port, emulator }
}

/** CHANNELS of sales and support on one emulator, each with the webhook secret given (or none). */
function twoChannels (emulatorUrl: string, secrets: { sales?: string, support?: string } = {}): string {
  const entry = (token: string, webhookSecret: string | undefined): Record<string, string> =>
    ({ url: emulatorUrl, token, ...(webhookSecret === undefined ? {} : { webhookSecret }) })
  return JSON.stringify({ sales: entry(TOKEN, secrets.sales), support: entry(SUPPORT_TOKEN, secrets.support) })
}

async function post (port: number, path: string, body: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

interface Raw { socket: Socket, received: () => string, closed: Promise<true> }

/** A plain TCP connection to write HTTP by hand: what it received, and when the server closed it. */
async function raw (t: Test, port: number): Promise<Raw> {
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  let data = ''
  socket.setEncoding('utf8')
  socket.on('data', (d: string) => { data += d })
  // A reset after the answer ends the connection as well as a close does.
  socket.on('error', () => {})
  const closed = once(socket, 'close').then(() => true as const)
  await once(socket, 'connect')
  return { socket, received: () => data, closed }
}

const headers = (path: string, extra: string[] = []): string =>
  [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Type: application/json', ...extra, '', ''].join('\r\n')

t.test('a wrong secret is answered before the body is sent, and the connection closes', async (t) => {
  // A deadline far away: what closes the connection here is the refusal, not the timeout.
  const h = await startBridge(t, { WEBHOOK_SECRET: SECRET, HTTP_TIMEOUT_MS: '60000' })
  const port = Number(new URL(h.httpUrl).port)
  for (const path of ['/v1/webhook/default/not-the-secret-000000', `/v1/webhook/nochannel/${SECRET}`]) {
    const c = await raw(t, port)
    c.socket.write(headers(path, ['Content-Length: 1048576']) + 'x'.repeat(1000))
    const closed = await within(c.closed, 3000, false)
    t.ok(closed, `${path}: closed by the server with most of the upload unsent`)
    t.match(c.received(), /^HTTP\/1\.1 404 /, 'answered 404')
    t.match(c.received(), /connection: close/i, 'saying it closes')
  }
  t.equal((await post(port, `/v1/webhook/default/${SECRET}`, '[]')).status, 200, 'the right secret still works')
})

t.test('requests whose headers or body never finish are cut after HTTP_TIMEOUT_MS', async (t) => {
  const h = await startBridge(t, { WEBHOOK_SECRET: SECRET, HTTP_TIMEOUT_MS: '500' })
  const port = Number(new URL(h.httpUrl).port)
  const headersUnfinished = await raw(t, port)
  headersUnfinished.socket.write(`POST /v1/webhook/default/${SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\n`)
  const bodyUnfinished = await raw(t, port)
  bodyUnfinished.socket.write(headers(`/v1/webhook/default/${SECRET}`, ['Content-Length: 1000']) + '[')
  const silent = await raw(t, port)
  const started = Date.now()
  for (const [what, c] of [['headers', headersUnfinished], ['body', bodyUnfinished], ['nothing sent', silent]] as const) {
    t.ok(await within(c.closed, 5000, false), `${what}: closed by the server after ${Date.now() - started} ms`)
  }
  t.match(bodyUnfinished.received(), /^HTTP\/1\.1 408 /, 'an unfinished body is answered 408')
  t.equal((await post(port, `/v1/webhook/default/${SECRET}`, '[]')).status, 200, 'the server goes on')
})

t.test('a WebSocket outlives HTTP_TIMEOUT_MS', async (t) => {
  const h = await startBridge(t, { HTTP_TIMEOUT_MS: '300' })
  const c = await h.client()
  // Time itself is what this test is about: several deadlines, and several of Node's checks, pass.
  await delay(1500)
  t.equal(c.closeCode, undefined, 'still open')
  c.send({ type: 'ping' })
  t.ok(await c.next((f) => f.type === 'pong'), 'and working')
})

t.test('each channel takes its own secret only', async (t) => {
  const b = await bridge(t, (url) => ({ CHANNELS: twoChannels(url, { sales: SALES_SECRET, support: SUPPORT_SECRET }) }))
  const client = await new TestClient(`ws://127.0.0.1:${b.port}/v1/ws?channel=support`).open()
  t.teardown(() => { client.ws.terminate() })
  const clientId = (await client.hello()).clientId as string
  const delivery = (questionId: string): string => JSON.stringify([{ clientId, questionId, data: {} }])
  t.match(await post(b.port, `/v1/webhook/support/${SALES_SECRET}`, delivery('q-crossed')), { status: 404, body: { error: 'not.found' } }, 'another channel\'s secret')
  t.equal((await post(b.port, `/v1/webhook/support/${SECRET}`, delivery('q-unset'))).status, 404, 'a secret no channel has')
  t.same(await post(b.port, `/v1/webhook/support/${SUPPORT_SECRET}`, delivery('q-right')), { status: 200, body: { accepted: 1, duplicates: 0 } })
  t.equal((await post(b.port, `/v1/webhook/sales/${SALES_SECRET}`, '[]')).status, 200, 'sales takes its own')
  // What came before the right delivery has arrived by the time it has.
  await client.next((f) => isWebhook(f) && questionOf(f) === 'q-right')
  t.same(client.frames.filter(isWebhook).map(questionOf), ['q-right'], 'only the right delivery reached the client')
})

t.test('WEBHOOK_SECRET serves a bridge of one channel only', async (t) => {
  const lines: string[] = []
  const two = await bridge(t, (url) => ({ CHANNELS: twoChannels(url), WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'warn' }), { logStream: { write: (l) => { lines.push(l) } } })
  t.equal((await post(two.port, `/v1/webhook/sales/${SECRET}`, '[]')).status, 404, 'two channels: not for sales')
  t.equal((await post(two.port, `/v1/webhook/support/${SECRET}`, '[]')).status, 404, 'nor for support')
  const warning = lines.map((l) => (JSON.parse(l) as { msg: string }).msg).find((m) => m.startsWith('WEBHOOK_SECRET'))
  t.match(warning, /"sales", "support"/, 'a start-up warning names both')
  const mixed = await bridge(t, (url) => ({ CHANNELS: twoChannels(url, { sales: SALES_SECRET }), WEBHOOK_SECRET: SECRET }))
  t.equal((await post(mixed.port, `/v1/webhook/sales/${SALES_SECRET}`, '[]')).status, 200, 'a channel\'s own secret works beside it')
  t.equal((await post(mixed.port, `/v1/webhook/sales/${SECRET}`, '[]')).status, 404, 'and the shared one does not replace it')
  t.equal((await post(mixed.port, `/v1/webhook/support/${SECRET}`, '[]')).status, 404, 'nor serve the channel without one')
  const one = await bridge(t, (url) => ({ CHANNELS: JSON.stringify({ sales: { url, token: TOKEN } }), WEBHOOK_SECRET: SECRET }))
  t.equal((await post(one.port, `/v1/webhook/sales/${SECRET}`, '[]')).status, 200, 'one channel: accepted')
})

t.test('a body nested too deep is refused with 400, not 503, and the server goes on', async (t) => {
  const h = await startBridge(t, { WEBHOOK_SECRET: SECRET, WEBHOOK_MAX_BYTES: String(4 * 1_048_576) })
  const port = Number(new URL(h.httpUrl).port)
  const hook = `/v1/webhook/default/${SECRET}`
  const n = 200_000
  const deep = '{"a":'.repeat(n) + '1' + '}'.repeat(n)
  t.match(await post(port, hook, `[{"clientId":"c1","deep":${deep}}]`), { status: 400, body: { error: 'body.too.deep' } }, 'inside a response object')
  t.match(await post(port, hook, deep), { status: 400, body: { error: 'body.too.deep' } }, 'as the whole body')
  const shallow = '{"a":'.repeat(60) + '"{[{[\\"" ' + '}'.repeat(60)
  t.same(await post(port, hook, `[{"clientId":"c1","ok":${shallow}}]`), { status: 200, body: { accepted: 1, duplicates: 0 } }, 'brackets inside strings do not count')
  const c = await h.client()
  t.equal((await c.request({ type: 'getState', id: 's' })).ok, true, 'sockets are unaffected')
})

t.test('only a store that fails answers 503', async (t) => {
  // A Redis outage is what a store that throws stands for; the platform retries, and rightly.
  const down = Object.assign(new Mailbox(60_000, 10), { add: async (): Promise<number> => { throw new Error('redis down') } })
  const inbox = new WebhookInbox({ mailbox: down, echoes: new Echoes(60_000), tokens: new Map([['default', TOKEN]]), ratePerS: 100 })
  t.match(await inbox.receive('default', '[{"clientId":"c1"}]'), { status: 503, body: { error: 'store.unavailable' } })
  const deep = '{"a":'.repeat(100) + '1' + '}'.repeat(100)
  t.match(await inbox.receive('default', `[{"clientId":"c1","deep":${deep}}]`), { status: 400, body: { error: 'body.too.deep' } }, 'a shape problem is not an outage')
})

for (const level of ['debug', 'trace']) {
  t.test(`at LOG_LEVEL=${level} no log line holds a webhook secret`, async (t) => {
    const lines: string[] = []
    const b = await bridge(t, (url) => ({ CHANNELS: JSON.stringify({ sales: { url, token: TOKEN, webhookSecret: SALES_SECRET } }), LOG_LEVEL: level }), {
      logStream: { write: (l) => { lines.push(l) } }
    })
    const wrong = 'sales-webhook-secret-0123457'
    t.equal((await post(b.port, `/v1/webhook/sales/${SALES_SECRET}`, '[]')).status, 200)
    t.equal((await post(b.port, `/v1/webhook/sales/${wrong}`, '[]')).status, 404)
    t.equal((await post(b.port, `/v1/webhook/sales/${SALES_SECRET}?x=1`, '{nope')).status, 400)
    // Routes that do not exist: the default 404 handler writes the URL into its message.
    t.equal((await fetch(`http://127.0.0.1:${b.port}/v1/webhook/sales/${SALES_SECRET}`)).status, 404)
    t.equal((await post(b.port, `/V1/Webhook/${SALES_SECRET}`, '[]')).status, 404)
    // A request Node cannot parse: at trace level its error is logged with the bytes Node read.
    const malformed = await raw(t, b.port)
    malformed.socket.write(headers(`/v1/webhook/sales/${SALES_SECRET}`, ['Content-Length: nope']))
    await malformed.closed
    t.match(malformed.received(), /^HTTP\/1\.1 400 /)
    // A request's last line is written once its answer is out, which may be after the client has it.
    await until(() => lines.filter((l) => l.includes('request completed')).length >= 5, 5000, 'every request to be logged')
    t.ok(lines.some((l) => l.includes('/v1/webhook/sales/[redacted]')), 'requests are logged, redacted')
    const leaks = lines.filter((l) => l.includes(SALES_SECRET) || l.includes(wrong) || l.includes(JSON.stringify([...Buffer.from(SALES_SECRET)]).slice(1, -1)))
    t.same(leaks, [], 'no line holds the secret, nor the wrong one, nor their bytes')
  })
}
