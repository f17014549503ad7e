import t from 'tap'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { TestClient } from '../fixtures/ws-client.js'

// What one anonymous client, from one address, can do to everyone else, tried over real sockets: each
// limit holds, and whoever else is there is still served.

const raw = (c: TestClient): Socket => (c.ws as unknown as { _socket: Socket })._socket

t.test('connect–hello–close cycles cannot fill the instance: a feed that delivered nothing does not linger', async (t) => {
  const h = await startBridge(t, { MAX_POLLS: '10', POLL_STARTS_PER_S: '1000' })
  for (let i = 0; i < 40; i++) {
    const c = await h.client()
    c.close()
    await c.closed()
  }
  await until(() => h.app.bridge.hub.stats().feeds === 0, 5000, 'the cycled feeds to end')
  const legit = await h.client()
  t.equal(legit.welcome.type, 'welcome', 'the next visitor is welcomed')
  t.equal((await fetch(`${h.httpUrl}/readyz`)).status, 200)
})

t.test('at the poll limit, feeds that no socket holds give way; /readyz says full only when none does', async (t) => {
  const h = await startBridge(t, { MAX_POLLS: '2', POLL_LINGER_MS: '60000' })
  const gone = await h.client({ cid: 'tab' })
  const goneId = gone.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId: goneId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, goneId, 'hi')
  await gone.next((f) => f.type === 'event')
  gone.close()
  await gone.closed()
  await h.client()
  t.equal((await fetch(`${h.httpUrl}/readyz`)).status, 200, 'one feed lingers: there is room')
  const third = await h.client()
  t.equal(third.welcome.type, 'welcome', 'the lingering feed made room')
  const full = await fetch(`${h.httpUrl}/readyz`)
  t.equal(full.status, 503, 'every poll is held by a socket')
  t.match(await full.json(), { status: 'full' })
  const refused = await h.connect()
  refused.send({ type: 'hello' })
  t.equal(await refused.closed(), 1013, 'a new socket is refused for now')
  third.close()
  await until(() => h.app.bridge.hub.stats().feeds === 1, 5000, 'the third feed to end')
  t.equal((await fetch(`${h.httpUrl}/readyz`)).status, 200, 'ready again')
})

t.test('sockets and new clients are limited per source address', async (t) => {
  const h = await startBridge(t, { MAX_SOCKETS_PER_ADDRESS: '3', NEW_CLIENTS_PER_ADDRESS_BURST: '4', NEW_CLIENTS_PER_ADDRESS_PER_S: '0.1' })
  const a = await h.client()
  await h.client()
  await h.client()
  const fourth = await h.connect()
  t.equal(await fourth.closed(), 1013, 'a fourth socket from the address is refused')
  a.close()
  await a.closed()
  await until(() => h.app.bridge.sessions.size === 2, 5000, 'the socket to be released')
  const again = await h.client({ auth: a.welcome.ticket })
  t.equal(again.welcome.clientId, a.welcome.clientId, 'a freed place is taken by a known client')
  again.close()
  await again.closed()
  await until(() => h.app.bridge.sessions.size === 2, 5000, 'the socket to be released')
  const fresh = await h.client()
  t.equal(fresh.welcome.type, 'welcome', 'a fourth new client is within the burst')
  fresh.close()
  await fresh.closed()
  await until(() => h.app.bridge.sessions.size === 2, 5000, 'the socket to be released')
  const fifth = await h.connect()
  fifth.send({ type: 'hello' })
  t.equal(await fifth.closed(), 1013, 'a fifth new client from the address is refused for now')
  const known = await h.client({ auth: a.welcome.ticket })
  t.equal(known.welcome.clientId, a.welcome.clientId, 'a known client is still welcome')
})

t.test('behind a trusted proxy the forwarded address is the one counted', async (t) => {
  const h = await startBridge(t, { MAX_SOCKETS_PER_ADDRESS: '1', TRUST_PROXY: 'true' })
  const from = async (address: string): Promise<number | 'open'> => {
    const ws = new WebSocket(h.wsUrl, ['chatapi-bridge.v1'], { headers: { 'x-forwarded-for': address } })
    t.teardown(() => { ws.terminate() })
    return await new Promise((resolve) => {
      ws.once('close', (code) => { resolve(code) })
      // The refusal comes at once; a socket still open after a ping's round trip was let in.
      ws.once('open', () => {
        ws.send('{"type":"ping"}')
        ws.once('message', () => { resolve('open') })
      })
    })
  }
  t.equal(await from('203.0.113.1'), 'open')
  t.equal(await from('203.0.113.2'), 'open', 'another visitor behind the same proxy')
  t.equal(await from('203.0.113.1'), 1013, 'a second socket of the first visitor is refused')
})

t.test('pings before hello are bad frames; pings after it count against the rate limit', async (t) => {
  const h = await startBridge(t, { RATE_LIMIT_BURST: '5', RATE_LIMIT_PER_S: '0.1' })
  const early = await h.connect()
  for (let i = 0; i < 12; i++) early.send({ type: 'ping' })
  t.equal(await early.closed(), 4429, 'a stream of pings before hello closes the socket')
  t.notOk(early.frames.some((f) => f.type === 'pong'), 'none of them was answered')

  const chatty = await h.client()
  for (let i = 0; i < 20; i++) chatty.send({ type: 'ping' })
  t.equal(await chatty.closed(), 4429, 'a flood of pings closes the socket')
  t.equal(chatty.frames.filter((f) => f.type === 'pong').length, 5, 'the burst was answered')
  t.ok(chatty.frames.some((f) => f.type === 'error' && f.code === 'RATE_LIMITED'), 'then RATE_LIMITED')
})

t.test('only a pong is a pong: a socket that sends but never answers pings is ended', async (t) => {
  const h = await startBridge(t, { HEARTBEAT_MS: '100', RATE_LIMIT_PER_S: '1000', RATE_LIMIT_BURST: '1000' })
  const a = await h.client()
  const other = await h.client()
  ;(a.ws as unknown as { pong: () => void }).pong = () => {}
  const sending = setInterval(() => { a.send({ type: 'getState', id: `s${Date.now()}` }) }, 20)
  t.teardown(() => { clearInterval(sending) })
  const code = await a.closed(10_000)
  clearInterval(sending)
  t.ok(code > 0, `ended (${code}) though it kept sending requests`)
  t.equal((await other.request({ type: 'getState', id: 'x' })).ok, true, 'others are served')
})

t.test('results count against the outbound queue: a client that asks and never reads is closed', async (t) => {
  const h = await startBridge(t, { OUTBOUND_QUEUE_BYTES: '65536', RATE_LIMIT_PER_S: '1000', RATE_LIMIT_BURST: '1000', SLOW_CLIENT_MS: '60000' })
  const a = await h.client()
  const state = { blob: 'x'.repeat(60_000) }
  t.equal((await a.request({ type: 'setState', id: 'set', state })).ok, true)
  raw(a).pause()
  let n = 0
  const asking = setInterval(() => {
    for (let i = 0; i < 20; i++) a.send({ type: 'getState', id: `g${n++}` })
  }, 10)
  t.teardown(() => { clearInterval(asking) })
  await until(() => h.app.bridge.sessions.size === 0, 60_000, 'the socket that does not read to be closed')
  clearInterval(asking)
  t.pass(`closed after ${n} requests for 60 KB results`)
  const other = await h.client()
  t.equal((await other.request({ type: 'getState', id: 'o' })).ok, true, 'others are served')
})

t.test('a client\'s own close code does not become a metric label', async (t) => {
  const h = await startBridge(t)
  for (const code of [4999, 3123, 4502]) {
    const c = await h.client()
    c.ws.close(code)
    await c.closed()
  }
  await until(() => h.app.bridge.sessions.size === 0, 5000, 'the sockets to close')
  const text = await (await fetch(`${h.httpUrl}/metrics`)).text()
  const codes = [...text.matchAll(/bridge_socket_closes_total\{code="([^"]+)"\}/g)].map((m) => m[1])
  t.notOk(codes.includes('4999') || codes.includes('3123'), `no label of the client's choosing (${codes.join(', ')})`)
  t.ok(codes.includes('other'), 'counted as other')
  t.ok(codes.includes('4502'), 'a code of the protocol keeps its label')
})

t.test('resumes from cursors older than memory are paced per client; the socket is told to come back later', async (t) => {
  // A long hold: the live poll stays where it is, and every read of the upstream meanwhile is a resume's.
  const h = await startBridge(t, { EVENT_BUFFER: '2' }, { holdMs: 30_000 })
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (let i = 0; i < 6; i++) h.emulator.agentReply(TOKEN, clientId, `m${i}`)
  await a.next((f) => f.type === 'event' && JSON.stringify(f).includes('m5'))
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  const old = a.events()[0]?.cursor
  let reads = 0
  h.emulator.on('request', (r) => { if (r.route === 'events') reads++ })
  const codes: Array<number | boolean> = []
  for (let i = 0; i < 8; i++) {
    const c = await h.connect()
    c.send({ type: 'hello', auth: a.welcome.ticket, cid: 'tab', resume: old })
    const w = await Promise.race([c.next((f) => f.type === 'welcome'), c.closed()])
    codes.push(typeof w === 'number' ? w : w.resumed === true)
    c.close()
  }
  t.same(codes.slice(0, 4), [true, true, true, true], 'a few resumes from the upstream at once are fine')
  t.ok(codes.slice(4).every((c) => c === 1013), `then the client is told to try again later (${codes.join(', ')})`)
  t.ok(reads <= 4, `the upstream was read ${reads} times for eight hellos`)
})
