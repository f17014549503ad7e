import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { SignJWT } from 'jose'
import { BridgeClient, MemoryStorage, type BridgeClientOptions, type BridgeEvent, type WebSocketConstructor } from '../../packages/client/src/index.js'
import { startBridge, startBridgeOn, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeldAtLeast } from '../fixtures/waits.js'
import { next, sendAndAwaitAnswer, summary, textOf } from '../fixtures/sdk-events.js'

/** Quick retries, so that the tests wait for events rather than for backoff. */
const FAST = { baseMs: 20, maxMs: 100 }

function makeClient (t: Test, opts: BridgeClientOptions): BridgeClient {
  const client = new BridgeClient({ WebSocket, storage: new MemoryStorage(), backoff: FAST, ...opts })
  t.teardown(() => { client.close() })
  return client
}

async function pollRunning (h: Harness, client: BridgeClient): Promise<void> {
  await pollsHeldAtLeast(h.emulator, { clientId: client.clientId ?? '', cid: client.cid }, 1)
}

/** A client that records every event it gets in `seen`, connected, with its upstream poll running. */
async function connectedClient (t: Test, h: Harness, opts: BridgeClientOptions): Promise<{ client: BridgeClient, seen: BridgeEvent[] }> {
  const client = makeClient(t, opts)
  const seen: BridgeEvent[] = []
  client.on('event', (e) => { seen.push(e) })
  await client.connect()
  await pollRunning(h, client)
  return { client, seen }
}

/** Cuts every socket on the server side, with no close frame: what a dead network looks like. */
function cutSockets (h: Harness): void {
  for (const s of h.app.bridge.sessions) (s as unknown as { ws: WebSocket }).ws.terminate()
}


t.test('after a dropped socket the client resumes: nothing lost, nothing twice', async (t) => {
  const h = await startBridge(t)
  const { client, seen } = await connectedClient(t, h, { url: h.wsUrl, cid: 'tab' })
  const clientId = client.clientId as string
  const answered = next(client, 'event', (e) => e.type === 'botResponse')
  await client.send('one')
  await answered

  const dropped = next(client, 'state', (s) => s.state === 'reconnecting')
  const welcomed = next(client, 'welcome')
  cutSockets(h)
  h.emulator.agentReply(TOKEN, clientId, 'while you were away')
  const state = await dropped
  t.equal(state.code, 1006, 'an abnormal close')
  t.ok((state.delayMs ?? -1) >= 0 && (state.delayMs ?? Infinity) < FAST.baseMs, 'the first retry waits below the base')
  const welcome = await welcomed
  t.equal(welcome.resumed, true, 'resumed from the cursor')
  t.equal(welcome.cid, 'tab', 'the same cid')
  t.equal(welcome.clientId, clientId, 'the same visitor')
  await until(() => seen.some((e) => e.type === 'agentResponse'), 5000, 'the agent reply')

  await sendAndAwaitAnswer(client, 'two')
  t.same(summary(seen), [
    'clientRequest: one',
    'botResponse: You said: one',
    'agentResponse: while you were away',
    'clientRequest: two',
    'botResponse: You said: two'
  ])
  t.equal(new Set(seen.map((e) => e.cursor)).size, seen.length, 'every cursor once')
})

t.test('a socket that drops before its first event loses nothing either', async (t) => {
  const h = await startBridge(t)
  const { client, seen } = await connectedClient(t, h, { url: h.wsUrl, cid: 'tab' })
  const welcomed = next(client, 'welcome')
  cutSockets(h)
  h.emulator.agentReply(TOKEN, client.clientId as string, 'first words')
  t.equal((await welcomed).resumed, true, 'resumed from where the first socket started')
  await until(() => seen.length === 1, 5000, 'the agent reply')
  t.same(summary(seen), ['agentResponse: first words'])
})

t.test('after the bridge restarts on another port, the client follows the url getter and resumes', async (t) => {
  const h = await startBridge(t)
  let url = h.wsUrl
  const { client, seen } = await connectedClient(t, h, { url: () => url, cid: 'tab' })
  const answered = next(client, 'event', (e) => e.type === 'botResponse')
  await client.send('before')
  await answered

  const restarting = next(client, 'state', (s) => s.state === 'reconnecting')
  await h.app.close()
  t.equal((await restarting).code, 1012, 'the bridge said it restarts')
  h.emulator.agentReply(TOKEN, client.clientId as string, 'during the restart')
  const h2 = await startBridgeOn(t, h.emulator)
  const welcomed = next(client, 'welcome')
  url = h2.wsUrl
  t.equal((await welcomed).resumed, true, 'the new bridge resumes from the cursor of the old one')
  await until(() => seen.some((e) => e.type === 'agentResponse'), 5000, 'the agent reply')
  await sendAndAwaitAnswer(client, 'after')
  t.same(summary(seen), [
    'clientRequest: before',
    'botResponse: You said: before',
    'agentResponse: during the restart',
    'clientRequest: after',
    'botResponse: You said: after'
  ])
})

t.test('a request in flight when the socket drops is sent again with its id, and reaches the bot once', async (t) => {
  const h = await startBridge(t)
  const frames: string[] = []
  const Spy: WebSocketConstructor = class extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      const send = this.send.bind(this)
      Object.assign(this, { send: (data: string) => { frames.push(data); send(data) } })
    }
  }
  const { client, seen } = await connectedClient(t, h, { url: h.wsUrl, cid: 'tab', WebSocket: Spy })

  h.emulator.faults.add({ route: 'send', kind: 'delay', delayMs: 300 })
  const upstreamGotIt = new Promise<void>((resolve) => {
    h.emulator.on('request', (r) => { if (r.route === 'send') resolve() })
  })
  let settled = 0
  const answer = client.send('only once').finally(() => { settled++ })
  await upstreamGotIt
  cutSockets(h)
  const result = await answer
  t.match(result.data.replies[0], { text: 'You said: only once' })

  const sends = frames.map((f) => JSON.parse(f) as { type: string, id?: string }).filter((f) => f.type === 'send')
  t.equal(sends.length, 2, 'sent, then sent again after the reconnect')
  t.equal(sends[0]?.id, sends[1]?.id, 'with the same id')
  t.equal(h.emulator.requests.filter((r) => r.route === 'send').length, 1, 'the upstream saw one send')

  await sendAndAwaitAnswer(client, 'later')
  t.equal(settled, 1)
  t.equal(seen.filter((e) => e.type === 'clientRequest' && textOf(e) === 'only once').length, 1, 'one message in the conversation')
  t.equal(h.emulator.requests.filter((r) => r.route === 'send').length, 2)
})

t.test('a refused credential closes the client for good: no reconnect', async (t) => {
  const h = await startBridge(t)
  let upgrades = 0
  h.app.server.on('upgrade', () => { upgrades++ })
  const client = makeClient(t, { url: h.wsUrl, auth: 'not-a-ticket', random: () => 0 })
  const closed = next(client, 'state', (s) => s.state === 'closed')
  await t.rejects(client.connect(), { code: 'CLOSED', closeCode: 4401 })
  t.match(await closed, { previous: 'connecting', code: 4401 })
  t.equal(client.state, 'closed')
  await t.rejects(client.send('hi'), { code: 'CLOSED' })

  // A reconnect would have come at once (no jitter); a whole other connection takes longer.
  const other = makeClient(t, { url: h.wsUrl })
  await other.connect()
  await other.unreadCount()
  t.equal(upgrades, 2, 'the refused client did not come back')
})

t.test('a stored ticket the bridge refuses is dropped, and the client starts over as a new visitor at once', async (t) => {
  const h = await startBridge(t)
  let url = h.wsUrl
  const storage = new MemoryStorage()
  // One namespace for both bridges, as a site behind one address would have.
  const first = makeClient(t, { url: () => url, storage, storageKey: 'site', cid: 'tab' })
  const { clientId } = await first.connect()
  await sendAndAwaitAnswer(first, 'before the restart')
  first.close()

  await h.app.close()
  const h2 = await startBridgeOn(t, h.emulator, { TICKET_SECRET: 'another-secret-0123456789abcdef' })
  url = h2.wsUrl
  const client = makeClient(t, { url: () => url, storage, storageKey: 'site', cid: 'tab' })
  const states: Array<{ state: string, code?: number, reason?: string }> = []
  client.on('state', (s) => { states.push(s) })
  const welcome = await client.connect()
  t.not(welcome.clientId, clientId, 'a new visitor')
  t.equal(welcome.resumed, false, 'no cursor of the old client offered')
  t.equal(welcome.gap, undefined)
  t.equal(client.state, 'open')
  t.match(states.find((s) => s.state === 'reconnecting'), { code: 4401, reason: /starting as a new visitor/ })
  t.notOk(states.some((s) => s.state === 'closed'), 'never closed')

  // The new ticket is kept: the next client in the same storage is the new visitor.
  client.close()
  const again = makeClient(t, { url: () => url, storage, storageKey: 'site', cid: 'tab' })
  t.equal((await again.connect()).clientId, welcome.clientId)
})

t.test('a fresh hello refused too closes the client: the ticket is dropped only once', async (t) => {
  const h = await startBridge(t)
  const storage = new MemoryStorage()
  const first = makeClient(t, { url: h.wsUrl, storage, storageKey: 'site' })
  await first.connect()
  first.close()
  await h.app.close()
  // A bridge that refuses every hello: JWT mode, and the client has only a ticket.
  const h2 = await startBridgeOn(t, h.emulator, { AUTH_MODE: 'jwt', JWT_SECRET: 'jwt-secret-0123456789abcdefghij' })
  let upgrades = 0
  h2.app.server.on('upgrade', () => { upgrades++ })
  const client = makeClient(t, { url: h2.wsUrl, storage, storageKey: 'site', random: () => 0 })
  await t.rejects(client.connect(), { code: 'CLOSED', closeCode: 4401 })
  t.equal(upgrades, 2, 'the stored ticket, then one fresh hello')
  t.equal(client.state, 'closed')
})

t.test('in JWT mode the auth function gives a fresh token before every connect', async (t) => {
  const secret = 'jwt-secret-0123456789abcdefghij'
  const h = await startBridge(t, { AUTH_MODE: 'jwt', JWT_SECRET: secret })
  let calls = 0
  const auth = async (): Promise<string> => {
    calls++
    return await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-42').setExpirationTime('1m').sign(new TextEncoder().encode(secret))
  }
  const client = makeClient(t, { url: h.wsUrl, auth, cid: 'phone' })
  const welcome = await client.connect()
  t.equal(welcome.clientId, 'user-42')
  t.equal(welcome.ticket, undefined)
  const welcomed = next(client, 'welcome')
  cutSockets(h)
  await welcomed
  t.equal(calls, 2, 'one token per connect')
})

t.test('a failing auth function is reported and retried', async (t) => {
  const h = await startBridge(t)
  let calls = 0
  const client = makeClient(t, {
    url: h.wsUrl,
    auth: () => {
      if (++calls === 1) throw new Error('token service down')
      return undefined
    }
  })
  const reported = next(client, 'error')
  const retrying = next(client, 'state', (s) => s.state === 'reconnecting')
  const welcome = client.connect()
  t.match(await reported, { message: 'token service down' })
  t.match(await retrying, { previous: 'connecting', reason: /auth/ })
  t.type((await welcome).clientId, 'string')
  t.equal(calls, 2)
})
