import t from 'tap'
import type { Socket } from 'node:net'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { TestClient, Frame } from '../fixtures/ws-client.js'

const raw = (c: TestClient): Socket => (c.ws as unknown as { _socket: Socket })._socket
const seqOf = (f: Frame): number => (f.event as { event: { n: number } }).event.n

/**
 * Publishes `count` large events in a burst, at most 100 per millisecond: the
 * Chat API pages by time, 250 events at a time, so a catch-up from the
 * upstream cannot page through a millisecond holding more than 250 events
 * of one client (a limit of the API, in docs/protocol.md), which a loop
 * publishing in-process would otherwise make.
 */
function publishBig (h: Awaited<ReturnType<typeof startBridge>>, clientId: string, from: number, count: number): void {
  let ms = Date.now()
  let inMs = 0
  for (let n = from; n < from + count; n++) {
    if (++inMs > 100) {
      while (Date.now() === ms) { /* the next millisecond is at most one away */ }
      ms = Date.now()
      inMs = 1
    }
    h.emulator.publish(TOKEN, clientId, 'bulk', { n, blob: 'x'.repeat(8000) })
  }
}

t.test('a slow reader loses nothing, a fast one is not held back, and a feed of slow readers stops polling', async (t) => {
  const h = await startBridge(t, { OUTBOUND_QUEUE_BYTES: '65536', EVENT_BUFFER: '2000', EVENT_BUFFER_BYTES: '16777216' })
  const slow = await h.client({ cid: 'tab' })
  const clientId = slow.welcome.clientId as string
  const fast = await h.client({ auth: slow.welcome.ticket, cid: 'tab' })
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  raw(slow).pause()
  publishBig(h, clientId, 0, 800)
  await fast.next((f) => f.type === 'event' && seqOf(f) === 799, 20_000)
  t.same(fast.events().map(seqOf), Array.from({ length: 800 }, (_, i) => i), 'the fast socket got all, in order')

  // Now only the slow socket is left: its feed stops polling upstream.
  fast.close()
  await fast.closed()
  publishBig(h, clientId, 800, 400)
  await until(() => h.app.bridge.hub.stats().pausedFeeds === 1, 20_000, 'the feed to pause')
  t.pass('polling paused while every socket is behind')

  raw(slow).resume()
  await slow.next((f) => f.type === 'event' && seqOf(f) === 1199, 30_000)
  t.same(slow.events().map(seqOf), Array.from({ length: 1200 }, (_, i) => i), 'the slow socket got every event once, in order')
})

t.test('a reader that stays behind is closed with 4409 and resumes with nothing lost', async (t) => {
  const h = await startBridge(t, { OUTBOUND_QUEUE_BYTES: '16384', SLOW_CLIENT_MS: '300', HEARTBEAT_MS: '100', EVENT_BUFFER: '50' })
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  // Keep answering pings at the TCP level is impossible while paused; allow it, the point here is the 4409.
  raw(a).pause()
  publishBig(h, clientId, 0, 600)
  await until(() => h.app.bridge.sessions.size === 0, 20_000, 'the slow socket to be closed')
  raw(a).resume()
  const code = await a.closed(20_000)
  t.ok(code === 4409 || code === 1006, `closed (${code})`)
  const got = a.events()
  const last = got.at(-1)
  t.ok(got.length < 600, `it had only ${got.length} before it was closed`)
  const b = await h.client({ auth: a.welcome.ticket, cid: 'tab', ...(last === undefined ? {} : { resume: last.cursor }) })
  if (last !== undefined) t.equal(b.welcome.resumed, true, 'resumed from the upstream')
  await b.next((f) => f.type === 'event' && seqOf(f) === 599, 20_000)
  t.same([...got, ...b.events()].map(seqOf), Array.from({ length: 600 }, (_, i) => i), 'every event once, in order, across the two sockets')
})

t.test('a resume older than the events in memory is bridged from the upstream', async (t) => {
  const h = await startBridge(t, { EVENT_BUFFER: '2' })
  const keeper = await h.client({ cid: 'tab' })
  const clientId = keeper.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (let n = 0; n < 6; n++) {
    h.emulator.publish(TOKEN, clientId, 'numbered', { n })
    await keeper.next((f) => f.type === 'event' && seqOf(f) === n)
  }
  const cursor = keeper.events()[1]!.cursor
  const b = await h.client({ auth: keeper.welcome.ticket, cid: 'tab', resume: cursor })
  t.equal(b.welcome.resumed, true)
  h.emulator.publish(TOKEN, clientId, 'numbered', { n: 6 })
  await b.next((f) => f.type === 'event' && seqOf(f) === 6)
  t.same(b.events().map(seqOf), [2, 3, 4, 5, 6])
})

t.test('rate limit: RATE_LIMITED past the burst, then 4429 for a flood', async (t) => {
  const h = await startBridge(t, { RATE_LIMIT_BURST: '5', RATE_LIMIT_PER_S: '1' })
  const a = await h.client()
  const bystander = await h.client()
  for (let i = 0; i < 8; i++) a.send({ type: 'unreadCount', id: `q${i}` })
  const results = await Promise.all(Array.from({ length: 8 }, async (_, i) => await a.next((f) => f.type === 'result' && f.id === `q${i}`)))
  t.equal(results.filter((r) => r.ok === true).length, 5, 'the burst passes')
  t.equal(results.filter((r) => (r.error as { code?: string } | undefined)?.code === 'RATE_LIMITED').length, 3)
  for (let i = 0; i < 10; i++) a.send({ type: 'unreadCount', id: `flood${i}` })
  t.equal(await a.closed(), 4429)
  t.equal((await bystander.request({ type: 'unreadCount', id: 'fine' })).ok, true, 'others are served')
  const metrics = await (await fetch(`${h.httpUrl}/metrics`)).text()
  t.match(metrics, /bridge_rate_limited_total \d+/)
})

t.test('caps: sockets per client, upstream polls per instance', async (t) => {
  const h = await startBridge(t, { MAX_SOCKETS_PER_CLIENT: '2', MAX_POLLS: '2' })
  const a = await h.client({ cid: 'one' })
  await h.client({ auth: a.welcome.ticket, cid: 'one' })
  const third = await h.connect()
  third.send({ type: 'hello', auth: a.welcome.ticket, cid: 'one' })
  t.equal(await third.closed(), 4429, 'a third socket of one client is refused')

  await h.client({ cid: 'x' }) // a second feed: the limit of two polls is reached
  const busy = await h.connect()
  busy.send({ type: 'hello', cid: 'y' })
  t.equal(await busy.closed(), 1013, 'past the poll limit: try again later')
})

t.test('new upstream polls are paced in a reconnect storm', async (t) => {
  const h = await startBridge(t, { POLL_STARTS_PER_S: '20' })
  const firstPolls: number[] = []
  const seen = new Set<string>()
  h.emulator.on('request', (r) => {
    if (r.route !== 'events' || r.clientId === undefined || seen.has(r.clientId)) return
    seen.add(r.clientId)
    firstPolls.push(r.at)
  })
  await Promise.all(Array.from({ length: 30 }, async () => await h.client()))
  await until(() => firstPolls.length === 30, 10_000, 'every poll to start')
  firstPolls.sort((a, b) => a - b)
  const span = (firstPolls.at(-1) as number) - (firstPolls[0] as number)
  t.ok(span >= 1300, `30 polls at 20/s take about 1.45 s (took ${span} ms)`)
  const busiest = Math.max(...firstPolls.map((at) => firstPolls.filter((b) => b >= at && b < at + 1000).length))
  t.ok(busiest <= 21, `no second starts more than 20 (and the first token): ${busiest}`)
})
