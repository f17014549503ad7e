import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { BridgeClient, MemoryStorage, type BridgeClientOptions, type BridgeEvent, type StateChange, type WebSocketConstructor } from '../../packages/client/src/index.js'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { startHttpProxy, type HttpProxy, type UpgradePolicy } from '../fixtures/http-proxy.js'
import { next, sendAndAwaitAnswer, summary } from '../fixtures/sdk-events.js'
import { pollsHeldAtLeast } from '../fixtures/waits.js'

const FAST = { baseMs: 20, maxMs: 100 }

/** The system clock, with a hand to move its date on (timers keep real time): for what the client remembers. */
function skewedClock (): BridgeClientOptions['clock'] & { skip: (ms: number) => void } {
  let skew = 0
  return {
    now: () => Date.now() + skew,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => { clearTimeout(h as NodeJS.Timeout) },
    skip: (ms) => { skew += ms }
  }
}

interface Client { client: BridgeClient, seen: BridgeEvent[], states: StateChange[] }

function makeClient (t: Test, opts: BridgeClientOptions): Client {
  const client = new BridgeClient({ WebSocket, storage: new MemoryStorage(), backoff: FAST, ...opts })
  t.teardown(() => { client.close() })
  const seen: BridgeEvent[] = []
  const states: StateChange[] = []
  client.on('event', (e) => { seen.push(e) })
  client.on('state', (s) => { states.push(s) })
  return { client, seen, states }
}

async function behind (t: Test, policy: UpgradePolicy, env: Record<string, string> = {}): Promise<Harness & { proxy: HttpProxy, url: string }> {
  const h = await startBridge(t, env)
  const proxy = await startHttpProxy(t, [h.httpUrl], policy)
  return Object.assign(h, { proxy, url: proxy.via(h.wsUrl) })
}

t.test('behind a proxy that refuses upgrades, the client falls back to HTTP at once, chats, and gets pushed events', async (t) => {
  const h = await behind(t, 'refuse')
  const { client, seen, states } = makeClient(t, { url: h.url, cid: 'tab' })
  const welcome = await client.connect()
  t.equal(client.transport, 'http')
  t.equal(h.proxy.upgrades, 1, 'one upgrade tried')
  const fallback = states.find((s) => s.state === 'reconnecting')
  t.match(fallback?.reason, /trying the HTTP transport/)
  t.equal(fallback?.delayMs, 0, 'no backoff before the fallback')

  await sendAndAwaitAnswer(client, 'over http')
  await pollsHeldAtLeast(h.emulator, { clientId: welcome.clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, welcome.clientId, 'an agent, pushed')
  await until(() => seen.some((e) => e.type === 'agentResponse'), 5000, 'the agent reply')
  t.same(summary(seen), ['clientRequest: over http', 'botResponse: You said: over http', 'agentResponse: an agent, pushed'])
})

t.test('a dropped event stream is resumed over HTTP: nothing lost, nothing twice', async (t) => {
  const h = await behind(t, 'refuse')
  const { client, seen } = makeClient(t, { url: h.url, cid: 'tab' })
  const welcome = await client.connect()
  await pollsHeldAtLeast(h.emulator, { clientId: welcome.clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, welcome.clientId, 'before')
  await until(() => seen.length === 1, 5000, 'the first event')

  const again = next(client, 'welcome')
  h.proxy.dropAll()
  h.emulator.agentReply(TOKEN, welcome.clientId, 'while the stream was down')
  const resumed = await again
  t.equal(resumed.resumed, true)
  t.equal(client.transport, 'http', 'remembered: no WebSocket tried on the reconnect')
  t.equal(h.proxy.upgrades, 1)
  h.emulator.agentReply(TOKEN, welcome.clientId, 'after')
  await until(() => seen.length === 3, 5000, 'three events')
  await sendAndAwaitAnswer(client, 'still chatting')
  t.same(summary(seen).slice(0, 3), ['agentResponse: before', 'agentResponse: while the stream was down', 'agentResponse: after'])
})

t.test('a proxy that takes the upgrade and passes nothing: HTTP after transportTimeoutMs', async (t) => {
  const h = await behind(t, 'swallow')
  const { client, states } = makeClient(t, { url: h.url, transportTimeoutMs: 300 })
  const started = Date.now()
  await client.connect()
  t.equal(client.transport, 'http')
  t.ok(Date.now() - started >= 290, 'the WebSocket had its time')
  t.match(states.find((s) => s.state === 'reconnecting')?.reason, /no frame over the WebSocket in time; trying the HTTP transport/)
  await sendAndAwaitAnswer(client, 'hello')
})

t.test('what worked is remembered for rememberTransportMs, then WebSocket is tried again and, welcomed, forgotten', async (t) => {
  const h = await startBridge(t)
  const storage = new MemoryStorage()
  const clock = skewedClock()
  // A network that refuses upgrades, then one that lets them through, to the same bridge with the same storage.
  const refusing = await startHttpProxy(t, [h.httpUrl], 'refuse')
  const opts = { storage, clock, rememberTransportMs: 60_000, storageKey: 'one-bridge' }
  const first = makeClient(t, { ...opts, url: refusing.via(h.wsUrl) })
  await first.client.connect()
  t.equal(first.client.transport, 'http')
  first.client.close()
  t.match(storage.getItem('chatapi-bridge:one-bridge:transport'), /^http@\d+$/, 'HTTP remembered, with until when')

  // A page load later: straight to HTTP, no upgrade tried.
  const second = makeClient(t, { ...opts, url: refusing.via(h.wsUrl) })
  await second.client.connect()
  t.equal(second.client.transport, 'http')
  t.equal(refusing.upgrades, 1, 'the second client tried no upgrade')
  t.equal(second.client.clientId, first.client.clientId, 'the same visitor, by its stored ticket')
  second.client.close()

  // Past the memory, on a network that lets WebSockets through: WebSocket first, and the memory is gone.
  clock.skip(61_000)
  const third = makeClient(t, { ...opts, url: h.wsUrl })
  await third.client.connect()
  t.equal(third.client.transport, 'websocket')
  t.equal(storage.getItem('chatapi-bridge:one-bridge:transport'), null, 'forgotten once a WebSocket worked')
  await sendAndAwaitAnswer(third.client, 'websocket again')
})

t.test('transports: [\'http\'] uses HTTP alone; a channel and a bridge that went away are handled as over a socket', async (t) => {
  const h = await startBridge(t)
  const { client, states } = makeClient(t, { url: h.wsUrl, transports: ['http'], channel: 'default' })
  await client.connect()
  t.equal(client.transport, 'http')
  await sendAndAwaitAnswer(client, 'only http')
  const { client: lost } = makeClient(t, { url: h.wsUrl, transports: ['http'], channel: 'nope' })
  await t.rejects(lost.connect(), /4404|channel/, 'an unknown channel is final, as over a socket')
  await h.app.close()
  await until(() => states.some((s) => s.state === 'reconnecting' && s.code === 1012), 5000, 'the 1012 of the shutdown')
  t.pass('the shutdown reached the client as 1012')
})

t.test('a WebSocket the runtime will not even make (a page\'s CSP throws) leaves HTTP; a URL that is none stays final', async (t) => {
  const h = await startBridge(t)
  const Refused = class { constructor () { throw new Error('Refused to connect: it violates the Content Security Policy') } } as unknown as WebSocketConstructor
  const { client, states } = makeClient(t, { url: h.wsUrl, WebSocket: Refused })
  await client.connect()
  t.equal(client.transport, 'http')
  t.match(states[1]?.reason, /Content Security Policy; trying the HTTP transport/)
  await sendAndAwaitAnswer(client, 'despite the policy')
  const { client: bad } = makeClient(t, { url: 'not a url', WebSocket: Refused })
  await t.rejects(bad.connect(), /cannot open a socket/)
  t.equal(bad.state, 'closed')
})
