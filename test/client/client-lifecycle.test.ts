import t, { type Test } from 'tap'
import WebSocket from 'ws'
import {
  BridgeClient, MemoryStorage, type BridgeClientOptions, type BridgeEvent, type ClientEnvironment, type EnvironmentChange,
  type StateChange, type WebSocketConstructor
} from '../../packages/client/src/index.js'
import { globalEnvironment } from '../../packages/client/src/environment.js'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeldAtLeast } from '../fixtures/waits.js'
import { next, sendAndAwaitAnswer, summary, textOf } from '../fixtures/sdk-events.js'
import { startTcpProxy } from '../fixtures/tcp-proxy.js'
import { FakeClock } from '../fixtures/fake-clock.js'

/*
 * The SDK on a phone: a socket the OS keeps "open" on a dead network, the
 * network going and coming back, the app going to the background and
 * returning. The device is an injected environment and time an injected
 * clock, so no test needs a DOM or waits for a timer; the bridge and the
 * sockets are real.
 */

/** A device whose network and visibility the test changes; it counts who listens. */
class FakeEnvironment implements ClientEnvironment {
  online = true
  visible = true
  readonly listeners = new Set<(change: EnvironmentChange) => void>()

  watch (listener: (change: EnvironmentChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  isOnline (): boolean { return this.online }
  isVisible (): boolean { return this.visible }

  emit (change: EnvironmentChange): void {
    if (change === 'online' || change === 'offline') this.online = change === 'online'
    else this.visible = change === 'visible'
    for (const l of [...this.listeners]) l(change)
  }
}

/** A WebSocket that counts the sockets made and records every frame sent and received, in order. */
function spyingWebSocket (): { WS: WebSocketConstructor, made: () => number, sent: string[], received: string[], pong: () => Promise<void> } {
  let made = 0
  const sent: string[] = []
  const received: string[] = []
  let onPong: (() => void) | undefined
  const WS: WebSocketConstructor = class extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      made++
      const send = this.send.bind(this)
      Object.assign(this, { send: (data: string) => { sent.push(data); send(data) } })
      this.on('message', (data) => {
        received.push(String(data))
        if (String(data) === '{"type":"pong"}') onPong?.()
      })
    }
  }
  return { WS, made: () => made, sent, received, pong: async () => { await new Promise<void>((resolve) => { onPong = resolve }) } }
}

function makeClient (t: Test, opts: BridgeClientOptions): BridgeClient {
  const client = new BridgeClient({ WebSocket, storage: new MemoryStorage(), cid: 'phone', backoff: { baseMs: 60_000, maxMs: 60_000 }, random: () => 0.99, ...opts })
  t.teardown(() => { client.close() })
  return client
}

function watch (h: Harness, client: BridgeClient): { seen: BridgeEvent[], states: StateChange[], upgrades: () => number } {
  const seen: BridgeEvent[] = []
  const states: StateChange[] = []
  let upgrades = 0
  h.app.server.on('upgrade', () => { upgrades++ })
  client.on('event', (e) => { seen.push(e) })
  client.on('state', (s) => { states.push(s) })
  return { seen, states, upgrades: () => upgrades }
}

async function pollRunning (h: Harness, client: BridgeClient): Promise<void> {
  await pollsHeldAtLeast(h.emulator, { clientId: client.clientId ?? '', cid: client.cid }, 1)
}

/** Cuts every socket on the server side, with no close frame. */
function cutSockets (h: Harness): void {
  for (const s of h.app.bridge.sessions) (s as unknown as { ws: WebSocket }).ws.terminate()
}

/** Lets whatever a timer started run its synchronous part and its promise callbacks: a turn of the loop, not a wait for time. */
const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }


t.test('a bridge gone silent behind a socket the OS keeps open: given up within two heartbeats, resumed, nothing lost', async (t) => {
  const HEARTBEAT_MS = 300
  const h = await startBridge(t, { HEARTBEAT_MS: String(HEARTBEAT_MS) })
  const proxy = await startTcpProxy(t, h.wsUrl)
  const client = makeClient(t, { url: proxy.via(h.wsUrl), backoff: { baseMs: 20, maxMs: 100 } })
  const w = watch(h, client)
  await client.connect()
  await pollRunning(h, client)
  await sendAndAwaitAnswer(client, 'before')

  const gaveUp = next(client, 'state', (s) => s.state === 'reconnecting')
  const welcomed = next(client, 'welcome')
  proxy.blackhole()
  const deadAt = Date.now()
  h.emulator.agentReply(TOKEN, client.clientId as string, 'into the void')
  const state = await gaveUp
  // The watchdog, not a close the OS passed on: no close code, its reason. A dead TCP connection would otherwise take minutes.
  t.match(state, { previous: 'open', reason: /two heartbeats/ })
  t.equal(state.code, undefined, 'no close came through')
  // A loose bound, for busy machines: it tells two heartbeats from the minutes of TCP's own timeouts, no more (the watchdog's timing is tested on a fake clock).
  t.ok(Date.now() - deadAt < 10 * HEARTBEAT_MS, 'noticed in about two heartbeats, not minutes')
  t.equal((await welcomed).resumed, true, 'resumed on a new connection')
  t.equal(proxy.accepted(), 2)
  await until(() => w.seen.some((e) => textOf(e) === 'into the void'), 5000, 'the reply sent into the dead socket')
  await sendAndAwaitAnswer(client, 'after')
  t.same(summary(w.seen), [
    'clientRequest: before', 'botResponse: You said: before', 'agentResponse: into the void', 'clientRequest: after', 'botResponse: You said: after'
  ])
})

t.test('online or visible while waiting to reconnect: the client tries at once', async (t) => {
  const h = await startBridge(t)
  const env = new FakeEnvironment()
  const clock = new FakeClock()
  const client = makeClient(t, { url: h.wsUrl, environment: env, clock })
  const w = watch(h, client)
  await client.connect()

  for (const [changes, reason] of [[['online'], /network is back/], [['hidden', 'visible'], /foreground/]] as const) {
    const waiting = next(client, 'state', (s) => s.state === 'reconnecting')
    cutSockets(h)
    t.equal((await waiting).delayMs, 59_400, 'a long backoff, which the clock never lets pass')
    const trying = next(client, 'state', (s) => s.state === 'reconnecting')
    const welcomed = next(client, 'welcome')
    for (const c of changes) env.emit(c)
    t.match(await trying, { delayMs: 0, reason })
    // The try is due now: the clock runs what is due without moving on.
    clock.advance(0)
    t.equal((await welcomed).resumed, true)
  }
  t.equal(w.upgrades(), 3)
})

t.test('offline: an open socket is kept, and a dropped one waits for the network instead of retrying', async (t) => {
  const h = await startBridge(t)
  const env = new FakeEnvironment()
  const clock = new FakeClock()
  const spy = spyingWebSocket()
  const client = makeClient(t, { url: h.wsUrl, environment: env, clock, WebSocket: spy.WS, backoff: { baseMs: 20, maxMs: 100 } })
  const w = watch(h, client)
  await client.connect()

  env.emit('offline')
  t.equal(client.state, 'open', 'nothing drastic while open')
  t.equal(w.states.length, 2, 'no change of state')
  await sendAndAwaitAnswer(client, 'still works')

  const waiting = next(client, 'state', (s) => s.state === 'reconnecting')
  cutSockets(h)
  const state = await waiting
  t.match(state, { code: 1006, reason: /waiting for the network/ })
  t.equal(state.delayMs, undefined, 'no timer to announce')
  // Ten minutes of airplane mode: with backoff below 100 ms, a retry storm would make thousands of sockets.
  clock.advance(600_000)
  await turn()
  t.equal(spy.made(), 1, 'no socket tried while offline')
  t.equal(client.state, 'reconnecting')

  const welcomed = next(client, 'welcome')
  env.emit('online')
  clock.advance(0)
  t.equal((await welcomed).resumed, true)
  t.equal(spy.made(), 2)
  t.equal(w.upgrades(), 2, 'the bridge saw one socket before and one after')
})

t.test('visible after a long time hidden: a ping; a live socket stays, a dead one is given up within a heartbeat and resumed', async (t) => {
  const HEARTBEAT_MS = 3_600_000
  // An hour's heartbeat: no ping of the bridge's comes during the test, so only the client's probe can tell.
  const h = await startBridge(t, { HEARTBEAT_MS: String(HEARTBEAT_MS) })
  const proxy = await startTcpProxy(t, h.wsUrl)
  const env = new FakeEnvironment()
  const clock = new FakeClock()
  const spy = spyingWebSocket()
  const client = makeClient(t, { url: proxy.via(h.wsUrl), environment: env, clock, WebSocket: spy.WS, random: () => 0 })
  const w = watch(h, client)
  await client.connect()
  await pollRunning(h, client)

  env.emit('hidden')
  clock.advance(2_000)
  env.emit('visible')
  t.notOk(spy.sent.includes('{"type":"ping"}'), 'a short absence is left to the watchdog')

  env.emit('hidden')
  clock.advance(60_000)
  const ponged = spy.pong()
  env.emit('visible')
  t.equal(spy.sent.at(-1), '{"type":"ping"}', 'pinged at the foreground')
  await ponged
  clock.advance(HEARTBEAT_MS)
  t.equal(client.state, 'open', 'answered: the socket lives')

  await sendAndAwaitAnswer(client, 'before the freeze')
  env.emit('hidden')
  clock.advance(60_000)
  proxy.blackhole()
  h.emulator.agentReply(TOKEN, client.clientId as string, 'while frozen')
  env.emit('visible')
  t.equal(spy.sent.at(-1), '{"type":"ping"}')
  clock.advance(HEARTBEAT_MS - 1)
  t.equal(client.state, 'open')
  const gaveUp = next(client, 'state', (s) => s.state === 'reconnecting')
  const welcomed = next(client, 'welcome')
  clock.advance(1)
  t.match(await gaveUp, { previous: 'open', reason: /no answer to a ping within a heartbeat/, delayMs: 0 })
  clock.advance(0)
  t.equal((await welcomed).resumed, true)
  await until(() => w.seen.some((e) => textOf(e) === 'while frozen'), 5000, 'the reply of the frozen time')
  await sendAndAwaitAnswer(client, 'thawed')
  t.same(summary(w.seen), [
    'clientRequest: before the freeze', 'botResponse: You said: before the freeze', 'agentResponse: while frozen', 'clientRequest: thawed', 'botResponse: You said: thawed'
  ])
})

t.test("background 'close': the socket closes after the grace, and the foreground resumes it: what came meanwhile arrives once", async (t) => {
  const h = await startBridge(t)
  const env = new FakeEnvironment()
  const clock = new FakeClock()
  const spy = spyingWebSocket()
  const client = makeClient(t, { url: h.wsUrl, environment: env, clock, WebSocket: spy.WS, background: 'close' })
  const w = watch(h, client)
  await client.connect()
  await pollRunning(h, client)
  await sendAndAwaitAnswer(client, 'before')

  env.emit('hidden')
  clock.advance(29_999)
  t.equal(client.state, 'open', 'a quick switch of apps costs nothing')
  const parked = next(client, 'state')
  clock.advance(1)
  const state = await parked
  t.match(state, { state: 'reconnecting', previous: 'open', reason: /in the background; waiting for the foreground/ })
  t.equal(state.delayMs, undefined)
  await until(() => h.app.bridge.sessions.size === 0, 5000, 'the bridge to see the socket closed')
  h.emulator.agentReply(TOKEN, client.clientId as string, 'one')
  h.emulator.agentReply(TOKEN, client.clientId as string, 'two')
  env.emit('online')
  clock.advance(3_600_000)
  await turn()
  t.equal(spy.made(), 1, 'no socket in the background, whatever the network does')

  const welcomed = next(client, 'welcome')
  env.emit('visible')
  clock.advance(0)
  t.equal((await welcomed).resumed, true, 'resumed from the cursor')
  await until(() => w.seen.length >= 4, 5000, 'the replies of the absence')
  await sendAndAwaitAnswer(client, 'after')
  t.same(summary(w.seen), [
    'clientRequest: before', 'botResponse: You said: before', 'agentResponse: one', 'agentResponse: two', 'clientRequest: after', 'botResponse: You said: after'
  ])
  t.equal(new Set(w.seen.map((e) => e.cursor)).size, w.seen.length, 'every cursor once')
})

t.test('close() removes every listener, of an injected environment and of the globals', async (t) => {
  const h = await startBridge(t)
  const env = new FakeEnvironment()
  const client = makeClient(t, { url: h.wsUrl, environment: env })
  t.equal(env.listeners.size, 0, 'nothing listens before connect()')
  await client.connect()
  t.equal(env.listeners.size, 1)
  client.close()
  t.equal(env.listeners.size, 0, 'none after close()')

  // A page's globals: window (online/offline) and document (visibilitychange), as EventTargets that count listeners.
  let listening = 0
  const counting = <T extends EventTarget>(target: T): T => {
    const add = target.addEventListener.bind(target)
    const remove = target.removeEventListener.bind(target)
    return Object.assign(target, {
      addEventListener: (type: string, fn: () => void) => { listening++; add(type, fn) },
      removeEventListener: (type: string, fn: () => void) => { listening--; remove(type, fn) }
    })
  }
  const document = Object.assign(counting(new EventTarget()), { visibilityState: 'visible' })
  const page = Object.assign(counting(new EventTarget()), { document, navigator: { onLine: true } })
  const inPage = makeClient(t, { url: h.wsUrl, environment: globalEnvironment(page), backoff: { baseMs: 20, maxMs: 100 } })
  await inPage.connect()
  t.equal(listening, 3, 'online, offline and visibilitychange')

  const held = next(inPage, 'state', (s) => s.state === 'reconnecting')
  page.navigator.onLine = false
  page.dispatchEvent(new Event('offline'))
  cutSockets(h)
  t.match(await held, { reason: /waiting for the network/ })
  const welcomed = next(inPage, 'welcome')
  page.navigator.onLine = true
  page.dispatchEvent(new Event('online'))
  t.equal((await welcomed).resumed, true)
  inPage.close()
  t.equal(listening, 0, 'none after close()')
  t.doesNotThrow(() => { globalEnvironment({}).watch(() => {})() }, 'no globals (React Native, Node): nothing to listen to, and nothing throws')
})
