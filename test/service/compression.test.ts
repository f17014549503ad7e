import t, { type Test } from 'tap'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import { startBridge, TOKEN, type Harness } from '../fixtures/bridge.js'
import { TestClient, type Frame } from '../fixtures/ws-client.js'
import { pollsHeld } from '../fixtures/waits.js'

/** A bot answer of the size that compression is for: a few text replies and buttons, about 1.5 KB of JSON. */
const ANSWER = {
  nlpClass: '/Orders/Status',
  confidence: 0.87,
  replies: [
    { type: 'text', text: 'Your order left our warehouse yesterday and should arrive within two working days.', markup: 'Your order left our warehouse <b>yesterday</b> and should arrive within <i>two working days</i>.', state: '/Orders/Status' },
    { type: 'text', text: 'You can follow the parcel on the carrier\'s site, or I can send you a text message when it is out for delivery.', state: '/Orders/Status' },
    { type: 'buttons', buttons: [{ text: 'Track the parcel' }, { text: 'Text me on delivery' }, { text: 'Change the address' }, { text: 'Talk to an agent' }], state: '/Orders/Status' },
    { type: 'inlineButtons', buttons: [{ text: 'Carrier tracking', url: 'https://tracking.example.com/parcel/1234567890' }, { text: 'Delivery questions', url: 'https://shop.example.com/help/delivery' }], state: '/Orders/Status' },
    { type: 'text', text: 'Is there anything else I can help you with today? You can also ask about returns, refunds or your account.', state: '/Orders/Status' }
  ],
  answer: 'Your order left our warehouse yesterday and should arrive within two working days.',
  newSessionStarted: false,
  endSession: false,
  debugData: []
}

/** The TCP socket under a ws client: what it read is what came over the wire, compressed or not. */
const wire = (ws: WebSocket): Socket => (ws as unknown as { _socket: Socket })._socket

const isEvent = (type: string) => (f: Frame): boolean => f.type === 'event' && (f.event as { type?: unknown }).type === type

/** What was published, as an event frame carries it (the upstream adds its timestamp). */
function bodyOf (f: Frame): Record<string, unknown> {
  const { timestamp: _, ...body } = (f.event as { event: Record<string, unknown> }).event
  return body
}

/** A client that offers permessage-deflate (ws's default), with the upgrade answer it got; closed with the test. */
async function offering (t: Test, h: Harness): Promise<{ c: TestClient, upgrade: IncomingMessage }> {
  const c = new TestClient(h.wsUrl)
  t.teardown(() => { c.ws.terminate() })
  const upgrade = new Promise<IncomingMessage>((resolve) => { c.ws.once('upgrade', resolve) })
  await c.open()
  return { c, upgrade: await upgrade }
}

/**
 * Publishes an event to the client of `c` and resolves with the next frame,
 * which must carry it, its length as JSON text, and the bytes its socket read
 * for it.
 * The socket is quiet before (a welcome, no heartbeat for 25 s), so the
 * bytes read from the publish to the frame are the frame's own.
 */
async function pushed (h: Harness, c: TestClient, type: string, body: Record<string, unknown>): Promise<{ frame: Frame, textBytes: number, wireBytes: number }> {
  const clientId = (c.frames.find((f) => f.type === 'welcome') as Frame).clientId as string
  await pollsHeld(h.emulator, { clientId }, 1)
  const raw = new Promise<Buffer>((resolve) => { c.ws.once('message', (data) => { resolve(data as Buffer) }) })
  const before = wire(c.ws).bytesRead
  h.emulator.publish(TOKEN, clientId, type, body)
  const text = await raw
  const wireBytes = wire(c.ws).bytesRead - before
  const frame = JSON.parse(text.toString()) as Frame
  if (!isEvent(type)(frame)) throw new Error(`expected the ${type} event, got ${text.toString().slice(0, 200)}`)
  return { frame, textBytes: text.length, wireBytes }
}

t.test('with WS_COMPRESSION, a client that offers permessage-deflate gets it; large frames shrink on the wire, small ones go as they are', async (t) => {
  const h = await startBridge(t, { WS_COMPRESSION: 'true' })
  const { c, upgrade } = await offering(t, h)
  t.match(upgrade.headers['sec-websocket-extensions'], /^permessage-deflate/, 'the upgrade answer accepts the extension')
  t.match(upgrade.headers['sec-websocket-extensions'], /server_no_context_takeover/, 'without server context takeover, so that the threshold holds')
  t.match(upgrade.headers['sec-websocket-extensions'], /client_no_context_takeover/, 'and without the client\'s')
  t.match(upgrade.headers['sec-websocket-extensions'], /server_max_window_bits=12/, 'with a 4 KB window')
  t.equal(c.ws.extensions, 'permessage-deflate', 'the client uses it')
  await c.hello()

  const large = await pushed(h, c, 'botResponse', { data: ANSWER })
  t.same(bodyOf(large.frame), { data: ANSWER }, 'the large event arrives intact')
  t.ok(large.textBytes > 1024, `the large event's frame (${large.textBytes} bytes) is over the threshold`)
  t.ok(large.wireBytes < large.textBytes, `its wire bytes (${large.wireBytes}) are fewer than its JSON (${large.textBytes})`)

  const small = await pushed(h, c, 'stateUpdate', { state: { step: 2 } })
  t.same(bodyOf(small.frame), { state: { step: 2 } }, 'the small event arrives intact')
  t.ok(small.textBytes < 1024, `the small event's frame (${small.textBytes} bytes) is under the threshold`)
  t.ok(small.wireBytes >= small.textBytes, `it goes uncompressed: ${small.wireBytes} wire bytes for ${small.textBytes} of JSON`)

  const req = await c.request({ type: 'getState', id: 'g1' })
  t.equal(req.ok, true, 'requests and their results work as before')
})

t.test('WS_COMPRESSION_THRESHOLD moves the line between compressed and plain frames', async (t) => {
  const h = await startBridge(t, { WS_COMPRESSION: 'true', WS_COMPRESSION_THRESHOLD: '64' })
  const { c } = await offering(t, h)
  await c.hello()
  const small = await pushed(h, c, 'stateUpdate', { state: { note: 'a state of a few dozen bytes, said twice: a state of a few dozen bytes' } })
  t.ok(small.textBytes > 64 && small.textBytes < 1024, `a frame of ${small.textBytes} bytes, between the two thresholds`)
  t.ok(small.wireBytes < small.textBytes, `is compressed: ${small.wireBytes} wire bytes`)
})

t.test('WS_COMPRESSION_CONTEXT keeps the server\'s context, and with it every frame is compressed', async (t) => {
  const h = await startBridge(t, { WS_COMPRESSION: 'true', WS_COMPRESSION_CONTEXT: 'true' })
  const { c, upgrade } = await offering(t, h)
  t.notMatch(upgrade.headers['sec-websocket-extensions'], /server_no_context_takeover/, 'the server keeps its context')
  await c.hello()
  const first = await pushed(h, c, 'botResponse', { data: ANSWER })
  const second = await pushed(h, c, 'botResponse', { data: ANSWER })
  t.same(bodyOf(second.frame), { data: ANSWER }, 'the second event arrives intact')
  t.ok(second.wireBytes < first.wireBytes, `a frame like the one before costs less: ${second.wireBytes} against ${first.wireBytes} wire bytes`)
  const small = await pushed(h, c, 'stateUpdate', { state: { step: 2 } })
  t.ok(small.wireBytes < small.textBytes, `a small frame is compressed too: ${small.wireBytes} wire bytes for ${small.textBytes}`)
})

t.test('a client that asks the bridge for a window under 4 KB is refused at the upgrade, as docs/operations.md says', async (t) => {
  const h = await startBridge(t, { WS_COMPRESSION: 'true' })
  const outcome = async (serverMaxWindowBits: number): Promise<string> => {
    const ws = new WebSocket(h.wsUrl, 'chatapi-bridge.v1', { perMessageDeflate: { serverMaxWindowBits } })
    // A refused upgrade leaves the socket unopened: ending it then reports an error, which says nothing here.
    ws.on('error', () => {})
    t.teardown(() => { ws.terminate() })
    return await new Promise((resolve) => {
      ws.once('open', () => { resolve(ws.extensions) })
      ws.once('unexpected-response', (req, res) => {
        req.destroy()
        resolve(`HTTP ${String(res.statusCode)}`)
      })
    })
  }
  t.equal(await outcome(11), 'HTTP 400', 'ws refuses an offer it cannot meet with 400')
  t.equal(await outcome(12), 'permessage-deflate', 'a 4 KB window is granted')
  t.equal(await outcome(15), 'permessage-deflate', 'and a larger one gets the 4 KB window')
})

t.test('by default nothing is negotiated, even when the client offers it', async (t) => {
  const h = await startBridge(t)
  const { c, upgrade } = await offering(t, h)
  t.equal(upgrade.headers['sec-websocket-extensions'], undefined, 'no extension in the upgrade answer')
  t.equal(c.ws.extensions, '', 'the client does not use it')
  await c.hello()
  const large = await pushed(h, c, 'botResponse', { data: ANSWER })
  t.same(bodyOf(large.frame), { data: ANSWER }, 'the large event arrives intact')
  t.ok(large.wireBytes >= large.textBytes, `the large event goes as it is: ${large.wireBytes} wire bytes for ${large.textBytes}`)
})

t.test('with WS_COMPRESSION, a client that does not offer the extension works as before', async (t) => {
  const h = await startBridge(t, { WS_COMPRESSION: 'true' })
  const ws = new WebSocket(h.wsUrl, 'chatapi-bridge.v1', { perMessageDeflate: false })
  t.teardown(() => { ws.terminate() })
  const texts: string[] = []
  ws.on('message', (data: Buffer) => { texts.push(data.toString()) })
  const upgrade = new Promise<IncomingMessage>((resolve) => { ws.once('upgrade', resolve) })
  await new Promise((resolve) => { ws.once('open', resolve) })
  t.equal((await upgrade).headers['sec-websocket-extensions'], undefined, 'no extension in the upgrade answer')
  const received = async (): Promise<Frame> => await new Promise((resolve) => { ws.once('message', (data: Buffer) => { resolve(JSON.parse(data.toString()) as Frame) }) })
  const welcomed = received()
  ws.send(JSON.stringify({ type: 'hello' }))
  const clientId = (await welcomed).clientId as string
  await pollsHeld(h.emulator, { clientId }, 1)
  const before = wire(ws).bytesRead
  const arrived = received()
  h.emulator.publish(TOKEN, clientId, 'botResponse', { data: ANSWER })
  const event = await arrived
  t.ok(isEvent('botResponse')(event), 'the next frame is the event')
  t.same(bodyOf(event), { data: ANSWER }, 'the large event arrives intact')
  const text = texts.at(-1) as string
  t.ok(wire(ws).bytesRead - before >= text.length, `uncompressed: ${wire(ws).bytesRead - before} wire bytes for ${text.length}`)
})
