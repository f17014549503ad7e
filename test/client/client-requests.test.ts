import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { BridgeClient, BridgeRequestError, MemoryStorage, type BridgeClientOptions, type BridgeEvent, type StateChange } from '../../packages/client/src/index.js'
import { startBridge, TOKEN, type Harness } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'

/** A client of the harness' bridge, closed with the test; its poll is running when it resolves. */
async function connected (t: Test, h: Harness, opts: Partial<BridgeClientOptions> = {}): Promise<BridgeClient> {
  const client = new BridgeClient({ url: h.wsUrl, WebSocket, storage: new MemoryStorage(), ...opts })
  t.teardown(() => { client.close() })
  const welcome = await client.connect()
  // The upstream only gives a cid the events that come after its first poll.
  await pollsHeld(h.emulator, { clientId: welcome.clientId, cid: welcome.cid }, 1)
  return client
}

/** The first `event` the client emits that matches, from now on. */
async function nextEvent (client: BridgeClient, match: (e: BridgeEvent) => boolean): Promise<BridgeEvent> {
  return await new Promise((resolve) => {
    const off = client.on('event', (e) => {
      if (!match(e)) return
      off()
      resolve(e)
    })
  })
}

t.test('connects, sends, and gets the answer and the events', async (t) => {
  const h = await startBridge(t)
  const states: StateChange[] = []
  const client = new BridgeClient({ url: h.wsUrl, WebSocket, storage: new MemoryStorage(), cid: 'tab-1' })
  t.teardown(() => { client.close() })
  client.on('state', (s) => { states.push(s) })
  t.equal(client.state, 'closed', 'closed until connect()')
  const welcome = await client.connect()
  t.equal(welcome.cid, 'tab-1')
  t.equal(client.cid, 'tab-1')
  t.equal(client.clientId, welcome.clientId)
  t.type(welcome.ticket, 'string')
  t.same(states.map((s) => [s.previous, s.state]), [['closed', 'connecting'], ['connecting', 'open']])
  t.equal(await client.connect(), welcome, 'connect() while open resolves with the welcome at once')
  await pollsHeld(h.emulator, { clientId: welcome.clientId, cid: 'tab-1' }, 1)

  const iterator = client.events()
  const answered = nextEvent(client, (e) => e.type === 'botResponse')
  const answer = await client.send('hello there')
  t.equal(answer.cid, 'tab-1')
  t.type(answer.questionId, 'string')
  t.match(answer.data.replies[0], { type: 'text', text: 'You said: hello there' })
  t.notOk(JSON.stringify(answer).includes(TOKEN), 'no token in a result')

  const ev = await answered
  t.equal(ev.event.questionId, answer.questionId, 'the event carries the same answer')
  t.type(ev.cursor, 'string')
  const first = await iterator.next()
  const second = await iterator.next()
  t.same([first.value?.type, second.value?.type], ['clientRequest', 'botResponse'], 'the iterator yields the events in order')
  t.equal(first.value?.event.query, 'hello there')
  await iterator.return?.()
  t.same(await iterator.next(), { value: undefined, done: true }, 'a returned iterator is done')
})

t.test('every request type round-trips, and a failure rejects with its code', async (t) => {
  const h = await startBridge(t)
  const client = await connected(t, h, { cid: 'tab' })
  const answer = await client.send({ query: 'buttons', data: { from: 'test' } })
  t.equal(answer.data.replies[1]?.type, 'buttons')
  const byEvent = await client.send({ event: 'greet' })
  t.match(byEvent.data.replies[0], { text: 'Got the event "greet".' })

  const { messages } = await client.history({ limit: 10 })
  t.ok(messages.some((m) => m.questionId === answer.questionId), 'the history has the answer')
  t.same(await client.setState({ step: 2 }), { step: 2 })
  t.same(await client.getState(), { step: 2 })

  t.equal(await client.unreadCount(), 2, 'the two answers are unread')
  t.same(await client.getStatus(answer.questionId), { questionId: answer.questionId, status: 'SENT' })
  t.same(await client.setStatus(answer.questionId, 'READ'), { questionId: answer.questionId, status: 'READ' })
  await client.setStatuses([{ questionId: byEvent.questionId, status: 'READ' }])
  t.equal(await client.unreadCount(), 0)
  // After the counts: its answer lands upstream a moment later, unread.
  const accepted = await client.sendAsync('later')
  t.type(accepted.questionId, 'string')

  const missing = await client.getStatus('no-such-question').catch((err: unknown) => err)
  t.ok(missing instanceof BridgeRequestError)
  t.match(missing, { code: 'UPSTREAM_REJECTED', status: 404 })
  await t.rejects(client.send(''), { code: 'BAD_REQUEST' }, 'a request the bridge refuses')
  t.equal(client.state, 'open', 'a failed request leaves the socket open')
})

t.test('the ticket is kept in storage: a new client with the same storage is the same visitor', async (t) => {
  const h = await startBridge(t)
  const storage = new MemoryStorage()
  const a = await connected(t, h, { storage, cid: 'a' })
  const b = await connected(t, h, { storage, cid: 'b' })
  t.equal(b.clientId, a.clientId)
  const other = await connected(t, h, { cid: 'a' })
  t.not(other.clientId, a.clientId, 'another storage, another visitor')

  const mirrored = nextEvent(b, (e) => e.type === 'clientRequest')
  await a.send('from tab a')
  t.equal((await mirrored).event.query, 'from tab a', 'the other connection of the visitor sees the message')
})

t.test('the channel option picks the channel with ?channel=', async (t) => {
  const h = await startBridge(t)
  const client = await connected(t, h, { channel: 'default' })
  t.equal(client.welcome?.channel, 'default')
  const wrong = new BridgeClient({ url: h.wsUrl, WebSocket, storage: new MemoryStorage(), channel: 'nope', backoff: { baseMs: 1, maxMs: 5 } })
  t.teardown(() => { wrong.close() })
  const closed = new Promise((resolve) => { wrong.on('state', (s) => { if (s.state === 'closed') resolve(s) }) })
  void wrong.connect().catch(() => {})
  t.match(await closed, { code: 4404 }, 'an unknown channel closes with 4404, and the client does not retry')
})

t.test('auth may be a function, called before each connect', async (t) => {
  const h = await startBridge(t)
  const first = await connected(t, h)
  let calls = 0
  const client = await connected(t, h, {
    auth: async () => {
      calls++
      return first.welcome?.ticket
    }
  })
  t.equal(client.clientId, first.clientId)
  t.equal(calls, 1)
})

t.test('a request times out; close() rejects what waits and ends the iterators', async (t) => {
  const h = await startBridge(t)
  const client = await connected(t, h, { requestTimeoutMs: 200 })
  h.emulator.faults.add({ route: 'getState', kind: 'hang' })
  await t.rejects(client.getState(), { code: 'TIMEOUT' })

  h.emulator.faults.add({ route: 'getState', kind: 'hang' })
  const waiting = client.getState()
  const iterator = client.events()
  const next = iterator.next()
  client.close()
  await t.rejects(waiting, { code: 'CLOSED' })
  t.same(await next, { value: undefined, done: true })
  t.equal(client.state, 'closed')
  await t.rejects(client.unreadCount(), { code: 'CLOSED' }, 'no request after close()')
  await t.rejects(client.connect(), { code: 'CLOSED' }, 'no connect after close()')
  t.same(await client.events().next(), { value: undefined, done: true })
})

t.test('a frame over the limit is refused here, and the socket stays open', async (t) => {
  const h = await startBridge(t)
  const client = await connected(t, h)
  await t.rejects(client.send('x'.repeat(70_000)), { code: 'TOO_LARGE' })
  t.equal(client.state, 'open')
  t.equal(await client.unreadCount(), 0)
})

t.test('a request made before connect() is refused', async (t) => {
  const client = new BridgeClient({ url: 'ws://127.0.0.1:9/v1/ws', WebSocket, storage: new MemoryStorage() })
  await t.rejects(client.send('hi'), { code: 'CLOSED', message: /connect\(\) first/ })
  // Node 20 has no global WebSocket: the client takes the HTTP transport alone, unless told to use WebSocket only.
  if ((globalThis as { WebSocket?: unknown }).WebSocket === undefined) {
    t.equal(new BridgeClient({ url: 'ws://x' }).state, 'closed', 'made without a WebSocket class')
    t.throws(() => new BridgeClient({ url: 'ws://x', transports: ['websocket'] }), /no WebSocket class \(pass one as the WebSocket option/)
  }
  t.throws(() => new BridgeClient({ url: 'ws://x', transports: [] }), /the transports option is empty/)
})
