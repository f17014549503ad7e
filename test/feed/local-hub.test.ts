import t from 'tap'
import { CursorCodec, eventHash, type StreamPosition } from '../../dist/feed/cursor.js'
import type { FeedEvent } from '../../dist/feed/event.js'
import type { FeedKey, FeedSource, FeedSourceOptions, Subscriber } from '../../dist/feed/hub.js'
import { LocalHub } from '../../dist/feed/local-hub.js'
import { ChannelTraits } from '../../dist/upstream/traits.js'
import type { ChatApi } from '../../dist/upstream/chat-api.js'

// The local hub and its feeds on their own: a hand-driven source stands for the upstream and plain objects
// for the sockets, so fan-out, back-pressure, linger and resumes from memory are checked without a socket.

const quiet = { warn: () => {}, info: () => {}, child: () => quiet }

/** A feed source driven by the test: it hands over what the test gives it, and records pause and stop. */
class HandSource implements FeedSource {
  readonly o: FeedSourceOptions
  paused = false
  stopped = false
  position: number | undefined
  constructor (o: FeedSourceOptions) { this.o = o }
  get isPaused (): boolean { return this.paused }
  start (): void { this.o.onListening() }
  stop (): void { this.stopped = true }
  pause (): void { this.paused = true }
  resume (): void { this.paused = false }
  emit (...texts: string[]): void {
    const events: FeedEvent[] = texts.map((text, i) => {
      const json = JSON.stringify({ type: 'agentResponse', event: { text } })
      return { ts: 1_000 + i, hash: eventHash(json), json }
    })
    this.position = events.at(-1)?.ts
    this.o.onEvents(events)
  }
}

/** A socket as the hub sees it: it takes `room` frames, then reports a full queue. */
class Sink implements Subscriber {
  readonly frames: Array<{ cursor: string, event: { event: { text: string } } }> = []
  room: number
  slow = 0
  rejected = 0
  constructor (room = Infinity) { this.room = room }
  get texts (): string[] { return this.frames.map((f) => f.event.event.text) }
  deliver (frame: string): boolean {
    this.frames.push(JSON.parse(frame))
    this.room--
    return this.room > 0
  }
  upstreamRejected (): void { this.rejected++ }
  tooSlow (): void { this.slow++ }
}

function hub (o: { lingerMs?: number, bufferSize?: number, bufferBytes?: number, maxFeeds?: number, maxFeedsPerClient?: number } = {}): { hub: LocalHub, sources: HandSource[], cursors: CursorCodec } {
  const sources: HandSource[] = []
  const cursors = new CursorCodec(Buffer.alloc(32, 7))
  const api = { traits: new ChannelTraits() } as unknown as ChatApi
  const h = new LocalHub({
    apis: new Map([['default', api]]),
    cursors,
    log: quiet,
    lingerMs: o.lingerMs ?? 0,
    bufferSize: o.bufferSize ?? 10,
    bufferBytes: o.bufferBytes ?? 1_000_000,
    maxFeedsPerClient: o.maxFeedsPerClient ?? 64,
    backoffBaseMs: 1,
    backoffMaxMs: 10,
    resumeWaitMs: 1_000,
    maxFeeds: o.maxFeeds ?? 100,
    source: (s) => {
      const src = new HandSource(s)
      sources.push(src)
      return src
    }
  })
  return { hub: h, sources, cursors }
}

const key = (cid: string): FeedKey => ({ channel: 'default', clientId: 'c1', cid, all: false })

t.test('sockets of one key share one source; each gets every event once, in order', async (t) => {
  const { hub: h, sources } = hub()
  const a = new Sink()
  const b = new Sink()
  await h.subscribe(key('x'), a)
  await h.subscribe(key('x'), b)
  await h.subscribe(key('y'), new Sink())
  t.equal(sources.length, 2, 'one source per key')
  sources[0]?.emit('one', 'two')
  t.same(a.texts, ['one', 'two'])
  t.same(b.texts, ['one', 'two'])
  t.equal(a.frames[1]?.cursor, b.frames[1]?.cursor, 'one frame, one cursor, for every socket')
  t.same(h.stats(), { feeds: 2, polling: 2, subscribers: 3, pausedFeeds: 0, full: false })
})

t.test('a feed pauses its source only while every socket is behind, and a drained socket gets what it missed', async (t) => {
  const { hub: h, sources } = hub()
  const full = new Sink(1)
  await h.subscribe(key('x'), full)
  const src = sources[0] as HandSource
  src.emit('a')
  t.equal(src.paused, true, 'the only socket is full: the source waits')
  src.emit('b', 'c')
  t.same(full.texts, ['a'], 'nothing more is written to a full socket')
  full.room = Infinity
  h.drained(key('x'), full)
  t.same(full.texts, ['a', 'b', 'c'], 'the rest from memory, in order')
  t.equal(src.paused, false)
})

t.test('a socket that fell out of memory is told to resume; a feed with no socket ends without linger', async (t) => {
  const { hub: h, sources } = hub({ bufferSize: 2 })
  const slow = new Sink(1)
  const fine = new Sink()
  await h.subscribe(key('x'), slow)
  await h.subscribe(key('x'), fine)
  const src = sources[0] as HandSource
  src.emit('1', '2', '3', '4')
  h.drained(key('x'), slow)
  t.equal(slow.slow, 1, 'told it is too slow')
  t.same(fine.texts, ['1', '2', '3', '4'])
  h.unsubscribe(key('x'), fine)
  t.equal(src.stopped, true)
  t.equal(h.stats().feeds, 0)
})

t.test('a resume from a cursor in memory replays what followed it, to that socket only', async (t) => {
  const { hub: h, sources } = hub({ lingerMs: 60_000 })
  t.teardown(async () => { await h.close() })
  const first = new Sink()
  await h.subscribe(key('x'), first)
  const src = sources[0] as HandSource
  src.emit('a', 'b', 'c')
  const cursors = new CursorCodec(Buffer.alloc(32, 7))
  const at = cursors.decode(key('x'), first.frames[0]?.cursor as string) as StreamPosition
  h.unsubscribe(key('x'), first)
  t.equal(src.stopped, false, 'the feed lingers after its last socket')
  const back = new Sink()
  t.same(await h.subscribe(key('x'), back, at), { resumed: true })
  t.same(back.texts, ['b', 'c'])
  t.equal(sources.length, 1, 'the same feed, no new upstream poll')
})

t.test('the feed limit refuses a new key but not a socket of a known one', async (t) => {
  const { hub: h } = hub({ maxFeeds: 1 })
  await h.subscribe(key('x'), new Sink())
  await t.rejects(h.subscribe(key('y'), new Sink()), { name: 'FeedLimitError' })
  await t.resolves(h.subscribe(key('x'), new Sink()))
})

t.test('a refused channel token ends every feed of the channel and tells its sockets', async (t) => {
  const { hub: h, sources } = hub()
  const a = new Sink()
  await h.subscribe(key('x'), a)
  sources[0]?.o.onFatal({ message: 'refused' })
  t.equal(a.rejected, 1)
  t.equal(sources[0]?.stopped, true)
  await t.rejects(h.subscribe(key('z'), new Sink()), { name: 'ChannelRefusedError' }, 'and new sockets are refused at once')
})

const big = (i: number): string => `${i}:${'x'.repeat(1000)}`

t.test('the feeds of one client hold one copy of each event, and all of them together fit in the byte bound', async (t) => {
  for (const [bufferBytes, fits] of [[12_000, true], [5_000, false]] as const) {
    const { hub: h, sources } = hub({ bufferBytes, bufferSize: 100 })
    const slow = new Sink(1)
    const live = [new Sink(), new Sink(), new Sink()]
    await h.subscribe(key('x'), slow)
    for (const [i, cid] of ['x', 'y', 'z'].entries()) await h.subscribe(key(cid), live[i] as Sink)
    const texts = Array.from({ length: 10 }, (_, i) => big(i))
    // Every connection of a client gets the same events: three feeds, ten events of 1 KB each.
    for (const src of sources) src.emit(...texts)
    for (const s of live) t.same(s.texts, texts, 'live sockets get every event, whatever memory keeps')
    slow.room = Infinity
    h.drained(key('x'), slow)
    if (fits) {
      t.same(slow.texts, texts, `${bufferBytes} bytes hold the ten events once, not three times: the slow socket gets them from memory`)
      t.equal(slow.slow, 0)
    } else {
      t.equal(slow.slow, 1, `${bufferBytes} bytes do not hold them: the slow socket is told to resume`)
    }
  }
})

t.test('a feed whose socket left before any event does not linger; one with events does', async (t) => {
  const { hub: h, sources } = hub({ lingerMs: 60_000 })
  t.teardown(async () => { await h.close() })
  const quick = new Sink()
  await h.subscribe(key('x'), quick)
  h.unsubscribe(key('x'), quick)
  t.equal(sources[0]?.stopped, true, 'nothing delivered, nothing to resume from memory: the poll ends')
  const s = new Sink()
  await h.subscribe(key('y'), s)
  sources[1]?.emit('a')
  h.unsubscribe(key('y'), s)
  t.equal(sources[1]?.stopped, false, 'a feed with events lingers')
  t.equal(h.stats().feeds, 1)
})

t.test('at the feed limit, a feed that no socket holds gives way to a new socket; only feeds held by sockets refuse one', async (t) => {
  const { hub: h, sources } = hub({ lingerMs: 60_000, maxFeeds: 2 })
  t.teardown(async () => { await h.close() })
  const gone = new Sink()
  await h.subscribe(key('x'), gone)
  sources[0]?.emit('a')
  h.unsubscribe(key('x'), gone)
  await h.subscribe(key('y'), new Sink())
  t.equal(h.stats().full, false, 'one feed lingers: there is room')
  await h.subscribe(key('z'), new Sink())
  t.equal(sources[0]?.stopped, true, 'the lingering feed ended to make room')
  t.same(h.stats(), { feeds: 2, polling: 2, subscribers: 2, pausedFeeds: 0, full: true })
  await t.rejects(h.subscribe(key('w'), new Sink()), { name: 'FeedLimitError' })
})

t.test('one client keeps a bounded number of feeds: its own lingering ones give way first', async (t) => {
  const { hub: h, sources } = hub({ lingerMs: 60_000, maxFeedsPerClient: 2 })
  t.teardown(async () => { await h.close() })
  const gone = new Sink()
  await h.subscribe(key('x'), gone)
  sources[0]?.emit('a')
  h.unsubscribe(key('x'), gone)
  const other = { channel: 'default', clientId: 'c2', cid: 'q', all: false }
  const o = new Sink()
  await h.subscribe(other, o)
  sources[1]?.emit('b')
  h.unsubscribe(other, o)
  await h.subscribe(key('y'), new Sink())
  t.equal(sources[0]?.stopped, false, 'two feeds of c1: within its bound')
  await h.subscribe(key('z'), new Sink())
  t.equal(sources[0]?.stopped, true, 'the third feed of c1 ends its own lingering one')
  t.equal(sources[1]?.stopped, false, 'another client\'s lingering feed is left alone')
})
