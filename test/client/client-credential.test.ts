import t, { type Test } from 'tap'
import { once } from 'node:events'
import WebSocket, { WebSocketServer } from 'ws'
import { SignJWT } from 'jose'
import { BridgeClient, MemoryStorage, type BridgeClientOptions, type BridgeEvent, type StateChange } from '../../packages/client/src/index.js'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeldAtLeast } from '../fixtures/waits.js'
import { next, sendAndAwaitAnswer, summary, textOf } from '../fixtures/sdk-events.js'
import { FakeClock } from '../fixtures/fake-clock.js'

const SECRET = 'jwt-secret-for-sdk-credential-tests'
const JWT_ENV = { AUTH_MODE: 'jwt', JWT_SECRET: SECRET }
const SUB = 'user-77'

/** `exp` is in whole seconds, as JWTs have it: `nowS() + 3` lives 2 to 3 s. */
const nowS = (): number => Math.floor(Date.now() / 1000)

async function jwt (exp: number, sub = SUB): Promise<string> {
  return await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
}

/** A token function that gives what `plan` says for each call (counted from 1), and counts its calls. */
function tokens (plan: (call: number) => Promise<string | undefined>): { getToken: () => Promise<string | undefined>, calls: () => number } {
  let calls = 0
  return { getToken: async () => await plan(++calls), calls: () => calls }
}

function makeClient (t: Test, opts: BridgeClientOptions): BridgeClient {
  const client = new BridgeClient({ WebSocket, storage: new MemoryStorage(), backoff: { baseMs: 20, maxMs: 100 }, cid: 'tab', ...opts })
  t.teardown(() => { client.close() })
  return client
}

/** What a test watches on a client: its events, states, errors and welcomes, and the sockets the bridge saw. */
function watch (h: Harness, client: BridgeClient): { seen: BridgeEvent[], states: StateChange[], errors: Error[], welcomes: () => number, upgrades: () => number } {
  const seen: BridgeEvent[] = []
  const states: StateChange[] = []
  const errors: Error[] = []
  let welcomes = 0
  let upgrades = 0
  h.app.server.on('upgrade', () => { upgrades++ })
  client.on('event', (e) => { seen.push(e) })
  client.on('state', (s) => { states.push(s) })
  client.on('error', (e) => { errors.push(e) })
  client.on('welcome', () => { welcomes++ })
  return { seen, states, errors, welcomes: () => welcomes, upgrades: () => upgrades }
}


async function pollRunning (h: Harness, client: BridgeClient): Promise<void> {
  await pollsHeldAtLeast(h.emulator, { clientId: client.clientId ?? '', cid: client.cid }, 1)
}

t.test('with getToken the client refreshes its JWT on the open socket: one socket, the events keep coming', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const source = tokens(async () => await jwt(nowS() + 3))
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken })
  const w = watch(h, client)
  const welcome = await client.connect()
  const firstExp = welcome.expiresAt as number
  t.type(firstExp, 'number', 'the welcome says when the token expires')
  await pollRunning(h, client)

  const first = await next(client, 'credential')
  t.ok(Date.now() < firstExp, 'refreshed before the expiry')
  t.ok(first.expiresAt >= firstExp, 'to a later one')
  const second = await next(client, 'credential')
  t.ok(Date.now() > firstExp, 'the socket outlived its first token')
  t.ok(second.expiresAt >= first.expiresAt)

  h.emulator.agentReply(TOKEN, SUB, 'after two refreshes')
  await next(client, 'event', (e) => textOf(e) === 'after two refreshes')
  await sendAndAwaitAnswer(client, 'still here')
  t.equal(w.welcomes(), 1, 'one welcome')
  t.equal(w.upgrades(), 1, 'one socket: no reconnect')
  t.equal(source.calls(), 3, 'a token for the hello, and one for each refresh')
  t.same(w.errors, [])
  t.notOk(w.states.some((s) => s.state === 'reconnecting'))
  await pollRunning(h, client)
  t.same(summary(w.seen), ['agentResponse: after two refreshes', 'clientRequest: still here', 'botResponse: You said: still here'])
})

t.test('on a 4401 the client gets a fresh token, reconnects and resumes: nothing lost, nothing twice', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  // The refresh on the open socket gets an expired token, so the bridge closes the socket at its exp.
  const source = tokens(async (call) => await jwt(call === 2 ? nowS() - 60 : nowS() + 3))
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken })
  const w = watch(h, client)
  await client.connect()
  await pollRunning(h, client)
  await sendAndAwaitAnswer(client, 'one')

  // Published the moment the socket is gone: only the resume can bring it.
  client.on('state', (s) => { if (s.state === 'reconnecting' && s.code === 4401) h.emulator.agentReply(TOKEN, SUB, 'while you were away') })
  const refused = next(client, 'error')
  const dropped = next(client, 'state', (s) => s.state === 'reconnecting')
  const resumed = next(client, 'welcome')
  const away = next(client, 'event', (e) => textOf(e) === 'while you were away')
  t.match(await refused, { code: 'BAD_CREDENTIAL', message: 'JWT expired' }, 'the refused refresh is reported')
  t.match(await dropped, { previous: 'open', code: 4401, reason: /fresh token/, delayMs: 0 })
  const welcome = await resumed
  t.equal(welcome.resumed, true, 'resumed from the cursor')
  t.equal(welcome.clientId, SUB)
  await away
  await sendAndAwaitAnswer(client, 'two')

  t.same(summary(w.seen), [
    'clientRequest: one',
    'botResponse: You said: one',
    'agentResponse: while you were away',
    'clientRequest: two',
    'botResponse: You said: two'
  ])
  t.equal(new Set(w.seen.map((e) => e.cursor)).size, w.seen.length, 'every cursor once')
  t.equal(w.upgrades(), 2, 'one reconnect')
  t.equal(source.calls(), 3, 'the hello, the refused refresh, the hello after the 4401')
  t.equal(h.emulator.requests.filter((r) => r.route === 'send').length, 2, 'each send reached the upstream once')
})

t.test('a second 4401 in a row stops the client, as a refused token does today', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const source = tokens(async (call) => await jwt(call === 1 ? nowS() + 2 : nowS() - 60))
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken })
  const w = watch(h, client)
  await client.connect()
  const closed = await next(client, 'state', (s) => s.state === 'closed')
  t.match(closed, { code: 4401 })
  t.equal(w.upgrades(), 2, 'the first socket, and one more with the fresh (but refused) token')
  t.equal(source.calls(), 3)
  await t.rejects(client.send('hi'), { code: 'CLOSED' })

  // connect() again is a new start: a refusal is the first in a row again.
  const more = tokens(async (call) => call === 1 ? await jwt(nowS() - 60) : await jwt(nowS() + 60))
  const again = makeClient(t, { url: h.wsUrl, getToken: more.getToken })
  t.equal((await again.connect()).clientId, SUB, 'a refused first hello is worth one fresh token')
  t.equal(more.calls(), 2)
})

t.test('after a 4401, a token function that has no token stops the client without another socket', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const source = tokens(async (call) => call === 1 ? await jwt(nowS() + 2) : undefined)
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken })
  const w = watch(h, client)
  await client.connect()
  const closed = await next(client, 'state', (s) => s.state === 'closed')
  t.match(closed, { code: 4401, reason: /no fresh token/ })
  t.equal(w.upgrades(), 1)
  t.equal(source.calls(), 3, 'the hello, the refresh that had none, the try after the 4401')
  t.same(w.errors, [], 'a token function with nothing to give is no error')
})

t.test('auth and getToken are not given together; an auth function is a getToken', async (t) => {
  t.throws(() => new BridgeClient({ url: 'ws://127.0.0.1:9/v1/ws', WebSocket, auth: 'a', getToken: () => 'b' }), TypeError)
  const h = await startBridge(t, JWT_ENV)
  let calls = 0
  const client = makeClient(t, { url: h.wsUrl, auth: async () => { calls++; return await jwt(nowS() + 3) } })
  await client.connect()
  await next(client, 'credential')
  t.equal(calls, 2, 'asked again to refresh on the open socket')
})

t.test('a token function that throws at a refresh is reported; the 4401 that follows brings a fresh token', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const source = tokens(async (call) => {
    if (call === 2) throw new Error('token service down')
    return await jwt(nowS() + 3)
  })
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken })
  const w = watch(h, client)
  await client.connect()
  t.match(await next(client, 'error'), { message: 'token service down' })
  t.match(await next(client, 'state', (s) => s.state === 'reconnecting'), { code: 4401 })
  t.equal((await next(client, 'welcome')).resumed, true)
  t.equal(w.upgrades(), 2)
})

t.test('after a sleep: a token near its expiry is refreshed at once; one past it gets a new socket', async (t) => {
  // A heartbeat far longer than the sleeps, so that the client's watchdog stays out of it.
  const h = await startBridge(t, { ...JWT_ENV, HEARTBEAT_MS: '3600000' })
  const clock = new FakeClock(Date.now())
  const source = tokens(async () => await jwt(nowS() + 300))
  const client = makeClient(t, { url: h.wsUrl, getToken: source.getToken, clock, random: () => 0 })
  const w = watch(h, client)
  await client.connect()
  await pollRunning(h, client)

  // Awake, time passes in steps and nothing happens far from the expiry.
  clock.advance(60_000)
  t.equal(source.calls(), 1, 'no refresh four minutes before the expiry')

  // Asleep past the moment to refresh (30 s before the expiry), but not past the expiry: refreshed on the same socket.
  const refreshed = next(client, 'credential')
  clock.sleep(215_000)
  await refreshed
  t.equal(source.calls(), 2)
  t.equal(w.upgrades(), 1, 'on the same socket')

  // Asleep past the new expiry: the bridge has closed the socket, or will; the client does not wait to learn it.
  const dropped = next(client, 'state', (s) => s.state === 'reconnecting')
  const resumed = next(client, 'welcome')
  const away = next(client, 'event', (e) => textOf(e) === 'while the lid was closed')
  h.emulator.agentReply(TOKEN, SUB, 'while the lid was closed')
  clock.sleep(400_000)
  t.match(await dropped, { previous: 'open', reason: /slept/ })
  clock.advance(0)
  t.equal((await resumed).resumed, true, 'resumed on a new socket')
  await away
  t.equal(source.calls(), 3, 'with a fresh token')
  t.equal(w.upgrades(), 2)
  t.same(summary(w.seen), ['agentResponse: while the lid was closed'], 'once')
})

t.test('ticket mode: the ticket is renewed on the open socket before it expires', async (t) => {
  const h = await startBridge(t, { TICKET_TTL_S: '60', HEARTBEAT_MS: '3600000' })
  const clock = new FakeClock(Date.now())
  const storage = new MemoryStorage()
  const client = makeClient(t, { url: h.wsUrl, clock, storage, storageKey: 'site' })
  const w = watch(h, client)
  const welcome = await client.connect()
  t.equal(welcome.expiresAt, JSON.parse(Buffer.from((welcome.ticket as string).split('.')[1] as string, 'base64url').toString()).e * 1000)
  const refreshed = next(client, 'credential')
  // 80% of the minute: at 48 s, in steps of at most 30 s.
  clock.advance(47_000)
  t.equal(w.upgrades(), 1)
  clock.advance(1_000)
  const { expiresAt } = await refreshed
  t.type(expiresAt, 'number')
  t.equal(w.upgrades(), 1, 'no reconnect')
  t.type(storage.getItem('chatapi-bridge:site:ticket'), 'string', 'the renewed ticket is kept')
})

/**
 * A stand-in bridge that welcomes with what a test says and hands over the
 * frames it gets: the real one cannot play a bridge of before `expiresAt`,
 * nor answer an auth frame wrongly.
 */
async function fakeBridge (t: Test, welcome: Record<string, unknown>): Promise<{ url: string, frames: Array<Record<string, unknown>>, socket: Promise<WebSocket> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'chatapi-bridge.v1' })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise((resolve) => { wss.close(resolve) })
  })
  const frames: Array<Record<string, unknown>> = []
  const socket = new Promise<WebSocket>((resolve) => {
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as Record<string, unknown>
        frames.push(f)
        if (f.type === 'hello') ws.send(JSON.stringify({ type: 'welcome', clientId: SUB, cid: 'tab', resumed: false, heartbeatMs: 3_600_000, channel: 'default', ...welcome }))
      })
      resolve(ws)
    })
  })
  return { url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/v1/ws`, frames, socket }
}

t.test('a bridge whose welcome has no expiresAt (one of before it) gets no auth frame', async (t) => {
  const fake = await fakeBridge(t, {})
  const clock = new FakeClock(Date.now())
  const client = makeClient(t, { url: fake.url, clock, getToken: () => 'token' })
  await client.connect()
  // Less than the two heartbeats after which the client would give the silent stand-in up.
  clock.advance(7_000_000)
  // A token asked for on the way would go out after a turn of the loop; a request sent after it follows it on the socket.
  await new Promise((resolve) => setImmediate(resolve))
  client.getState().catch(() => {})
  await until(() => fake.frames.some((f) => f.type === 'getState'))
  t.same(fake.frames.map((f) => f.type), ['hello', 'getState'], 'no auth frame in almost two hours')
})

t.test('a malformed result to an auth frame is reported, and the socket kept', async (t) => {
  const clock = new FakeClock(Date.now())
  const fake = await fakeBridge(t, { expiresAt: clock.now() - 1 })
  const client = makeClient(t, { url: fake.url, clock, getToken: () => 'token' })
  const reported = next(client, 'error')
  await client.connect()
  // Already past, as a client clock far ahead of the bridge's would see it: refreshed at once.
  clock.advance(0)
  const ws = await fake.socket
  await until(() => fake.frames.some((f) => f.type === 'auth'))
  const auth = fake.frames.find((f) => f.type === 'auth') as { id: string, auth: string }
  t.equal(auth.auth, 'token')
  ws.send(JSON.stringify({ type: 'result', id: auth.id, ok: true, result: { expiresAt: 'soon' } }))
  t.match(await reported, { message: /malformed result to an auth frame/ })
  t.equal(client.state, 'open')
})
