import t from 'tap'
import { SignJWT } from 'jose'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { openStream, SseClient, welcomedStream } from '../fixtures/sse-client.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { Frame } from '../fixtures/ws-client.js'

const textOf = (f: Frame): string => (f.event as { event?: { text?: string } }).event?.text ?? ''
const agentEvent = (text: string) => (f: Frame): boolean => f.type === 'event' && textOf(f) === text

t.test('over HTTP: the stream names its key first, then hello, welcome, a send and its result, events with their cursor as SSE id', async (t) => {
  const h = await startBridge(t)
  const c = await openStream(t, h.httpUrl)
  t.equal(c.status, 200)
  t.match(c.headers['content-type'], /^text\/event-stream/)
  t.match(c.headers['cache-control'], /no-cache/)
  t.equal(c.headers['x-accel-buffering'], 'no', 'proxies told not to buffer')
  t.equal(c.sse[0]?.event, 'stream', 'the key comes first')
  t.match(c.key, /^[\w-]+\.[\w-]{24}$/, 'an instance and 18 random bytes')

  const welcome = await c.hello({ cid: 'tab' })
  t.type(welcome.clientId, 'string')
  t.type(welcome.ticket, 'string')
  t.equal(welcome.resumed, false)
  const clientId = welcome.clientId as string
  const sseOfWelcome = c.sse.find((e) => e.data.startsWith('{"type":"welcome"'))
  t.equal(sseOfWelcome?.id, welcome.cursor, 'a welcome that did not resume gives its cursor as the id to resume from')

  const result = await c.request({ type: 'send', id: 'r1', query: 'hello over http' })
  t.match(result, { type: 'result', id: 'r1', ok: true })
  t.notMatch(JSON.stringify(c.sse), TOKEN, 'the channel token is in no event')

  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, clientId, 'an agent writes')
  const ev = await c.next(agentEvent('an agent writes'))
  const sse = c.sse.find((e) => e.data.includes('an agent writes'))
  t.equal(sse?.id, ev.cursor, 'the SSE id of an event is its cursor')
  t.ok((await c.sent()).every((s) => s === 204), 'every POST taken with 204')

  // A ping frame is answered as over a socket.
  c.send({ type: 'ping' })
  await c.next((f) => f.type === 'pong')
})

t.test('a dropped stream resumed with Last-Event-ID (or ?lastEventId) loses nothing and doubles nothing', async (t) => {
  const h = await startBridge(t)
  const a = await welcomedStream(t, h.httpUrl, { cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (const text of ['e1', 'e2']) {
    h.emulator.agentReply(TOKEN, clientId, text)
    await a.next(agentEvent(text))
  }
  a.drop()
  // The bridge sees the stream go, and its feed outlives it for a while: what comes meanwhile waits there.
  h.emulator.agentReply(TOKEN, clientId, 'e3')
  h.emulator.agentReply(TOKEN, clientId, 'e4')

  // The hello names no resume: the header alone says where the client was, as a reconnecting EventSource does.
  const b = await welcomedStream(t, h.httpUrl, { auth: a.welcome.ticket, cid: 'tab' }, { lastEventId: a.lastId })
  t.equal(b.welcome.resumed, true, 'resumed from Last-Event-ID')
  await b.next(agentEvent('e4'))
  h.emulator.agentReply(TOKEN, clientId, 'e5')
  await b.next(agentEvent('e5'))
  t.same(b.events().map(textOf), ['e3', 'e4', 'e5'], 'after e2, each once')

  // The query parameter says the same, for clients that cannot set a header; a hello's resume wins over both.
  b.drop()
  const c = await welcomedStream(t, h.httpUrl, { auth: a.welcome.ticket, cid: 'tab' }, { query: `?lastEventId=${encodeURIComponent(b.lastId as string)}` })
  t.equal(c.welcome.resumed, true)
  h.emulator.agentReply(TOKEN, clientId, 'e6')
  await c.next(agentEvent('e6'))
  t.same(c.events().map(textOf), ['e6'])
  const e2 = a.events()[1]?.cursor as string
  c.drop()
  const d = await welcomedStream(t, h.httpUrl, { auth: a.welcome.ticket, cid: 'tab', resume: e2 }, { lastEventId: c.lastId })
  t.equal(d.welcome.resumed, true)
  await d.next(agentEvent('e6'))
  t.same(d.events().map(textOf), ['e3', 'e4', 'e5', 'e6'], 'from the hello\'s cursor, not the header\'s')

  // A Last-Event-ID of another client is no way into its conversation.
  const stranger = await welcomedStream(t, h.httpUrl, { cid: 'tab' }, { lastEventId: c.lastId })
  t.equal(stranger.welcome.resumed, false)
  t.match(stranger.welcome.gap, { reason: /not issued/ })
  t.equal(stranger.events().length, 0)
})

t.test('refusals are close events, as a socket\'s close codes', async (t) => {
  const secret = 'jwt-secret-for-sse-tests-0123456'
  const h = await startBridge(t, { AUTH_MODE: 'jwt', JWT_SECRET: secret, HELLO_TIMEOUT_MS: '300', ALLOWED_ORIGINS: 'https://shop.example' })
  const jwt = async (exp: number): Promise<string> => await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('user-1').setExpirationTime(exp).sign(new TextEncoder().encode(secret))

  const unknown = await openStream(t, h.httpUrl, { query: '?channel=nope' })
  t.equal(await unknown.closed(), 4404, 'unknown channel')
  t.equal(unknown.frames.length, 0)

  const foreign = await openStream(t, h.httpUrl, { origin: 'https://evil.example' })
  t.equal(await foreign.closed(), 4403, 'origin not allowed')
  t.equal(foreign.headers['access-control-allow-origin'], 'https://evil.example', 'a refused page can read its close code')

  const silent = await openStream(t, h.httpUrl)
  t.equal(await silent.closed(), 4408, 'no hello in time')

  const forged = await openStream(t, h.httpUrl)
  forged.send({ type: 'hello', auth: 'not-a-jwt' })
  t.equal(await forged.closed(), 4401, 'a bad credential')
  t.equal(forged.closeReason, 'credential missing, invalid or expired')

  const expiring = await welcomedStream(t, h.httpUrl, { auth: await jwt(Math.ceil(Date.now() / 1000) + 1) }, { origin: 'https://shop.example' })
  t.equal(expiring.headers['access-control-allow-origin'], 'https://shop.example')
  // At least a second ahead (exp is whole seconds), so that the hello is not already late.
  t.equal(await expiring.closed(4000), 4401, 'closed at its exp')
  t.equal(expiring.sse.at(-1)?.event, 'close', 'the close is the last event of the stream')

  // A page of a refused origin cannot post either.
  const fine = await openStream(t, h.httpUrl, { origin: 'https://shop.example' })
  const refused = await fine.post(`${fine.key as string}\n{"type":"ping"}`, { origin: 'https://evil.example' })
  t.same(refused, { status: 403, body: { error: 'FORBIDDEN_ORIGIN', message: 'origin not allowed' } })
})

t.test('bad POSTs get a clear error and the stream goes on', async (t) => {
  const h = await startBridge(t, { MAX_FRAME_BYTES: '2048' })
  const c = await welcomedStream(t, h.httpUrl, {})
  const noKey = await c.post('{"type":"ping"}')
  t.equal(noKey.status, 400)
  t.equal(noKey.body.error, 'BAD_REQUEST')
  const gone = await c.post(`${(c.key as string).slice(0, -4)}AAAA\n{"type":"ping"}`)
  t.equal(gone.status, 404, 'a key of no stream')
  t.equal(gone.body.error, 'NO_SUCH_STREAM')
  const huge = await c.post(`${c.key as string}\n${'x'.repeat(10_000)}`)
  t.equal(huge.status, 413, 'a body past the limit')
  // Not JSON: an error frame, as over a socket, and the stream stays open.
  t.equal((await c.post(`${c.key as string}\nnot json`)).status, 204)
  t.match(await c.next((f) => f.type === 'error'), { code: 'BAD_REQUEST' })
  c.send({ type: 'ping' })
  await c.next((f) => f.type === 'pong')
  t.equal(c.closeCode, undefined, 'still open')

  // One frame over MAX_FRAME_BYTES within a body that fits closes the stream with 1009.
  t.equal((await c.post(`${c.key as string}\n{"type":"ping","pad":"${'x'.repeat(2100)}"}`)).status, 204)
  t.equal(await c.closed(), 1009)
  const after = await c.post(`${c.key as string}\n{"type":"ping"}`)
  t.equal(after.status, 404, 'an ended stream takes no more frames')
})

t.test('heartbeats: data pings reach the stream and a client that answers none is ended', async (t) => {
  const h = await startBridge(t, { HEARTBEAT_MS: '150' })
  const c = await welcomedStream(t, h.httpUrl, {})
  t.equal(c.welcome.heartbeatMs, 150)
  await c.upcoming((f) => f.type === 'ping')
  t.ok(c.comments > 0, 'a comment line keeps idle proxies from cutting the stream')
  // Answering pings keeps it open past two heartbeats.
  for (let i = 0; i < 3; i++) {
    await c.upcoming((f) => f.type === 'ping')
    c.send({ type: 'pong' })
  }
  t.equal(c.closeCode, undefined, 'open while it answers')
  // A client that stops reading the stream without closing it answers no pong.
  const mute = await welcomedStream(t, h.httpUrl, {})
  await until(() => mute.closeCode !== undefined, 5000, 'the mute stream to end')
  t.pass(`a stream that answered no pong was ended (${String(mute.closeCode)})`)
})

t.test('a shutdown closes streams with 1012, and a draining bridge takes no new one', async (t) => {
  const h = await startBridge(t)
  const c = await welcomedStream(t, h.httpUrl, {})
  const closing = h.app.close()
  t.equal(await c.closed(), 1012)
  await closing
  const late = new SseClient(h.httpUrl)
  await late.open().catch(() => undefined)
  t.not(late.status, 200, 'no stream from a closed bridge')
})
