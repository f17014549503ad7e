import t, { type Test } from 'tap'
import { once } from 'node:events'
import WebSocket, { WebSocketServer } from 'ws'
import { until } from '../fixtures/bridge.js'
import { BridgeClient, MemoryStorage, type BridgeClientOptions } from '../../packages/client/src/index.js'
import { next } from '../fixtures/sdk-events.js'
import { FakeClock } from '../fixtures/fake-clock.js'

/**
 * The real bridge always pings, answers every request and closes only for
 * cause, so it cannot play a silent server, a slow one or one that closes
 * with a chosen code. This stand-in does only what each test tells it.
 */
type Frame = Record<string, unknown> & { type: string }

class Peer {
  readonly frames: Frame[] = []
  private waiters: Array<{ match: (f: Frame) => boolean, resolve: (f: Frame) => void }> = []
  readonly closed: Promise<number>

  constructor (readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => { ws.on('close', (code) => { resolve(code) }) })
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame
      this.frames.push(f)
      for (const w of [...this.waiters]) {
        if (w.match(f)) {
          this.waiters.splice(this.waiters.indexOf(w), 1)
          w.resolve(f)
        }
      }
    })
  }

  async next (type: string): Promise<Frame> {
    const seen = this.frames.find((f) => f.type === type)
    if (seen !== undefined) return seen
    return await new Promise((resolve) => { this.waiters.push({ match: (f) => f.type === type, resolve }) })
  }

  send (frame: object): void { this.ws.send(JSON.stringify(frame)) }

  /** Answers the hello with a welcome, and returns the hello. */
  async welcome (fields: Record<string, unknown> = {}): Promise<Frame> {
    const hello = await this.next('hello')
    this.send({ type: 'welcome', clientId: 'client-1', cid: hello.cid ?? 'server-cid', resumed: hello.resume !== undefined, heartbeatMs: 10_000, ...fields })
    return hello
  }
}

async function fakeBridge (t: Test): Promise<{ url: string, peer: () => Promise<Peer>, count: () => number }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (p) => p.has('chatapi-bridge.v1') ? 'chatapi-bridge.v1' : false })
  await once(wss, 'listening')
  const peers: Peer[] = []
  const waiting: Array<(p: Peer) => void> = []
  let taken = 0
  wss.on('connection', (ws) => {
    const p = new Peer(ws)
    peers.push(p)
    waiting.shift()?.(p)
  })
  t.teardown(async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise((resolve) => { wss.close(resolve) })
  })
  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}/v1/ws`,
    /** The next connection, in the order they came. */
    peer: async () => {
      const p = peers[taken]
      taken++
      if (p !== undefined) return p
      return await new Promise((resolve) => { waiting.push(resolve) })
    },
    count: () => peers.length
  }
}

function makeClient (t: Test, opts: BridgeClientOptions): BridgeClient {
  // The fake speaks WebSocket only: a client with HTTP to fall back on would leave it when a test keeps it silent.
  const client = new BridgeClient({ WebSocket, transports: ['websocket'], storage: new MemoryStorage(), backoff: { baseMs: 10, maxMs: 200 }, ...opts })
  t.teardown(() => { client.close() })
  return client
}

const event = (cursor: string, text: string): object => ({ type: 'event', cursor, event: { type: 'agentResponse', event: { text } } })

t.test('the hello carries the cid, the cursor and `all`; a ping is answered with a pong', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, cid: 'tab-9', all: false, auth: 'token-1' })
  void client.connect()
  const peer = await fake.peer()
  const hello = await peer.welcome()
  t.same(hello, { type: 'hello', auth: 'token-1', cid: 'tab-9', all: false })
  peer.send({ type: 'ping' })
  t.same(await peer.next('pong'), { type: 'pong' })
})

t.test('silence for two heartbeats: the client gives the socket up and resumes on a new one', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, cid: 'tab' })
  void client.connect()
  const first = await fake.peer()
  await first.welcome({ heartbeatMs: 50 })
  const got = next(client, 'event')
  first.send(event('cursor-1', 'hi'))
  t.equal((await got).cursor, 'cursor-1')

  const gaveUp = await next(client, 'state', (s) => s.state === 'reconnecting')
  t.match(gaveUp, { previous: 'open', reason: /two heartbeats/ })
  const second = await fake.peer()
  t.match(await second.next('hello'), { cid: 'tab', resume: 'cursor-1' }, 'resumes where it was')
  await first.closed
})

t.test('any frame keeps the watchdog quiet; two heartbeats of silence do not', async (t) => {
  const fake = await fakeBridge(t)
  const clock = new FakeClock()
  const client = makeClient(t, { url: fake.url, clock })
  const welcomed = client.connect()
  const peer = await fake.peer()
  await peer.welcome({ heartbeatMs: 300 })
  await welcomed
  // A ping every 100 ms for longer than two intervals (600 ms) must keep the socket. Each
  // pong is awaited before time moves on, so the client has read that ping by then.
  for (let i = 1; i <= 8; i++) {
    clock.advance(100)
    peer.send({ type: 'ping' })
    await until(() => peer.frames.filter((f) => f.type === 'pong').length === i)
  }
  t.equal(client.state, 'open')
  t.equal(fake.count(), 1, 'no second socket')
  // The same clock ends it: nothing for just under two intervals is fine, two intervals are not.
  clock.advance(599)
  t.equal(client.state, 'open', 'still open just before two intervals')
  const gaveUp = next(client, 'state')
  clock.advance(1)
  t.match(await gaveUp, { state: 'reconnecting', previous: 'open', reason: /two heartbeats/ })
  await peer.closed
})

t.test('the connect timeout, the backoff and the request timeout all run on the given clock', async (t) => {
  const fake = await fakeBridge(t)
  const clock = new FakeClock()
  let sockets = 0
  class CountingWebSocket extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      sockets++
    }
  }
  const client = makeClient(t, { url: fake.url, clock, WebSocket: CountingWebSocket, connectTimeoutMs: 1000, requestTimeoutMs: 5000, random: () => 0.5 })
  /** Lets the client's reaction to a timer (it asks for the credential first) run before looking. */
  const settle = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
  const connected = client.connect()
  const first = await fake.peer()
  await first.next('hello')
  let outcome: string | undefined
  const request = client.getState().then(() => 'resolved', (err: { code: string }) => err.code).then((o) => { outcome = o })

  clock.advance(999)
  t.equal(client.state, 'connecting', 'no welcome yet, and not too late either')
  const gaveUp = next(client, 'state')
  clock.advance(1)
  t.match(await gaveUp, { state: 'reconnecting', reason: 'no welcome in time', delayMs: 5 })
  await first.closed

  clock.advance(4)
  await settle()
  t.equal(sockets, 1, 'no new socket before the backoff is over')
  clock.advance(1)
  await settle()
  t.equal(sockets, 2, 'and one once it is')
  const second = await fake.peer()
  await second.welcome()
  await connected
  t.equal((await second.next('getState')).type, 'getState', 'the request went out on the new socket')

  clock.advance(3994)
  await settle()
  t.equal(outcome, undefined, 'the request still waits just before its timeout')
  clock.advance(1)
  await request
  t.equal(outcome, 'TIMEOUT')
})

t.test('no welcome in time: the socket is given up and a new one tried', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, connectTimeoutMs: 100 })
  const connected = client.connect()
  const first = await fake.peer()
  await first.next('hello')
  t.match(await next(client, 'state'), { state: 'reconnecting', previous: 'connecting', reason: 'no welcome in time' })
  const second = await fake.peer()
  await second.welcome()
  t.equal((await connected).clientId, 'client-1')
})

for (const code of [1003, 1009, 4403, 4404, 4502]) {
  t.test(`close ${code}: closed for good, pending requests fail`, async (t) => {
    const fake = await fakeBridge(t)
    const client = makeClient(t, { url: fake.url })
    void client.connect()
    const peer = await fake.peer()
    await peer.welcome()
    const pending = client.getState()
    await peer.next('getState')
    const closed = next(client, 'state')
    peer.ws.close(code, 'test close')
    t.match(await closed, { state: 'closed', previous: 'open', code, reason: 'test close' })
    await t.rejects(pending, { code: 'CLOSED', closeCode: code })
  })
}

t.test('4429: the client waits between half the cap and the cap', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, random: () => 0.5 })
  void client.connect()
  const peer = await fake.peer()
  await peer.welcome()
  const waiting = next(client, 'state', (s) => s.state === 'reconnecting')
  peer.ws.close(4429, 'slow down')
  t.match(await waiting, { state: 'reconnecting', code: 4429, delayMs: 150 })
  await (await fake.peer()).next('hello')
})

t.test('each failed try doubles the ceiling of the delay, up to the cap', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, random: () => 0.999, backoff: { baseMs: 20, maxMs: 100 } })
  const delays: number[] = []
  client.on('state', (s) => { if (s.delayMs !== undefined) delays.push(s.delayMs) })
  void client.connect()
  for (let i = 0; i < 4; i++) (await fake.peer()).ws.close(1011)
  const last = await fake.peer()
  await last.welcome()
  await next(client, 'welcome')
  t.same(delays, [19, 39, 79, 99])
  last.ws.close(1012)
  await (await fake.peer()).next('hello')
  t.same(delays, [19, 39, 79, 99, 19], 'a welcome starts the count again')
})

t.test('a gap: reported once, and the stale cursor is not offered again', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, cid: 'tab' })
  const gaps: Array<{ reason: string }> = []
  client.on('gap', (g) => { gaps.push(g) })
  void client.connect()
  const first = await fake.peer()
  await first.welcome()
  first.send(event('c1', 'one'))
  await next(client, 'event')
  first.ws.close(1012)

  const second = await fake.peer()
  t.match(await second.welcome({ resumed: false, gap: { reason: 'too old' } }), { resume: 'c1' })
  await next(client, 'welcome')
  t.same(gaps, [{ reason: 'too old' }])
  second.ws.close(1012)

  const third = await fake.peer()
  const hello = await third.welcome()
  t.equal(hello.resume, undefined, 'no cursor to offer')
  await next(client, 'welcome')
  t.match(gaps[1], { reason: /no cursor/ }, 'a reconnect with nothing to resume from is a gap too')
})

t.test('before any event, the client resumes from the cursor of the welcome', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url, cid: 'tab' })
  void client.connect()
  const first = await fake.peer()
  await first.welcome({ resumed: false, cursor: 'start-1' })
  await next(client, 'welcome')
  first.ws.close(1012)
  const second = await fake.peer()
  t.match(await second.welcome(), { resume: 'start-1' })
  await next(client, 'welcome')
  second.send(event('c2', 'next'))
  await next(client, 'event')
  second.ws.close(1012)
  t.match(await (await fake.peer()).next('hello'), { resume: 'c2' }, 'an event\'s cursor replaces it')
})

t.test('SHUTTING_DOWN keeps a request waiting; it is sent again after the reconnect', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url })
  void client.connect()
  const first = await fake.peer()
  await first.welcome()
  const answer = client.send('hello')
  const req = await first.next('send')
  first.send({ type: 'result', id: req.id, ok: false, error: { code: 'SHUTTING_DOWN', message: 'bye' } })
  first.ws.close(1012)
  const second = await fake.peer()
  await second.welcome()
  const again = await second.next('send')
  t.equal(again.id, req.id, 'the same id')
  second.send({ type: 'result', id: req.id, ok: true, result: { questionId: 'q', data: { replies: [] }, timestamp: 'now' } })
  t.match(await answer, { questionId: 'q' })
})

t.test('error frames and malformed frames', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url })
  const errors: Error[] = []
  client.on('error', (e) => { errors.push(e) })
  void client.connect()
  const peer = await fake.peer()
  await peer.welcome()

  const pending = client.unreadCount()
  const req = await peer.next('unreadCount')
  peer.send({ type: 'error', code: 'BAD_REQUEST', message: 'no', id: req.id })
  await t.rejects(pending, { code: 'BAD_REQUEST', message: 'no' }, 'an error frame with an id fails that request')

  const reported = next(client, 'error', (e) => 'code' in e)
  peer.send({ type: 'error', code: 'BAD_REQUEST', message: 'frame is not valid JSON' })
  t.match(await reported, { code: 'BAD_REQUEST' }, 'without one it is reported')
  const unknown = next(client, 'error', (e) => 'code' in e)
  peer.send({ type: 'error', code: 'BAD_REQUEST', message: 'late', id: req.id })
  t.match(await unknown, { message: 'late' }, 'and so is one whose request is no longer waiting')

  const bad = next(client, 'error', (e) => /malformed result/.test(e.message))
  peer.ws.send('not json')
  peer.send({ no: 'type' })
  peer.send({ type: 'event', cursor: 1 })
  peer.send({ type: 'result', ok: true })
  peer.send({ type: 'result', id: 'unknown', ok: true, result: {} })
  peer.send({ type: 'from-a-later-version' })
  await bad
  t.match(errors.map((e) => e.message), [/frame/, 'late', /not JSON/, /no type/, /malformed event/, /malformed result/])
  t.equal(client.state, 'open')
})

t.test('a listener that throws is reported and does not stop the others', async (t) => {
  const fake = await fakeBridge(t)
  const client = makeClient(t, { url: fake.url })
  client.on('welcome', () => { throw new Error('listener bug') })
  const reported = next(client, 'error')
  const welcomed = client.connect()
  await (await fake.peer()).welcome()
  await welcomed
  t.match(await reported, { message: 'listener bug' })
})

t.test('an invalid URL closes the client at once', async (t) => {
  const client = makeClient(t, { url: 'not a url' })
  await t.rejects(client.connect(), { code: 'CLOSED', message: /cannot open a socket/ })
  t.equal(client.state, 'closed')
})
