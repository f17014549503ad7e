import t from 'tap'
import { Poller, type PollerSink } from '../../dist/feed/poller.js'
import type { FeedEvent } from '../../dist/feed/event.js'
import { ChannelTraits } from '../../dist/upstream/traits.js'
import type { PollUpstream } from '../../dist/upstream/poll-upstream.js'
import type { CursorPosition } from '../../dist/feed/cursor.js'
import { BridgeError, ErrorCode } from '../../dist/socket/errors.js'

/** A scripted upstream: each poll takes the next answer; `ts` asked is recorded. */
function scripted (answers: Array<Array<Record<string, unknown>> | BridgeError>) {
  const asked: Array<number | undefined> = []
  let i = 0
  let stopper: (() => void) | undefined
  const upstream: PollUpstream = {
    poll: (_q, ts, sink) => {
      asked.push(ts)
      const a = answers[i++]
      let cancelled = false
      if (a === undefined) {
        // Out of script: hold like a long poll until cancelled.
        stopper?.()
        return { cancel: () => {} }
      }
      setImmediate(() => {
        if (cancelled) return
        if (a instanceof BridgeError) sink.pollFailed(a)
        else sink.pollAnswered(a)
      })
      return { cancel: () => { cancelled = true } }
    }
  }
  const done = new Promise<void>((resolve) => { stopper = resolve })
  return { upstream, asked, done }
}

const Q = { clientId: 'c1', cid: 'x1', all: true }

function make (s: { upstream: PollUpstream }, sink: Partial<PollerSink>, o: { backoffMaxMs?: number, start?: CursorPosition, before?: CursorPosition[], traits?: ChannelTraits } = {}): Poller {
  return new Poller({ upstream: s.upstream, traits: o.traits ?? new ChannelTraits(), backoff: { baseMs: 1, maxMs: o.backoffMaxMs ?? 2 } }, Q, { onEvents: () => {}, onFatal: () => {}, log: quiet, ...sink }, o.start ?? { ts: 0, hash: '' }, o.before)
}

const ev = (iso: string, text: string): Record<string, unknown> => ({ type: 'agentResponse', event: { timestamp: iso, text } })
const quiet = { warn: () => {}, info: () => {} }

t.test('inclusive boundary is de-duplicated and an idle poll asks from T+1', async (t) => {
  const T = '2026-01-01T00:00:00.100'
  const ms = Date.parse(T + 'Z')
  const s = scripted([
    [ev(T, 'a'), ev(T, 'b')],
    [ev(T, 'a'), ev(T, 'b'), ev(T, 'c')], // a late event of the same millisecond
    [ev(T, 'a'), ev(T, 'b'), ev(T, 'c')] // nothing new: T is complete
  ])
  const got: FeedEvent[] = []
  const p = make(s, { onEvents: (e) => got.push(...e) })
  p.start()
  await s.done
  p.stop()
  t.same(got.map((e) => JSON.parse(e.json).event.text), ['a', 'b', 'c'])
  // Until the bound is known to be inclusive, "from T" is asked as T - 1, which is right either way.
  t.same(s.asked, [0, ms - 1, ms - 1, ms])
})

t.test('duplicated and reordered answers deliver each event once, in time order', async (t) => {
  const s = scripted([
    [ev('2026-01-01T00:00:00.300', 'c'), ev('2026-01-01T00:00:00.100', 'a'), ev('2026-01-01T00:00:00.100', 'a'), ev('2026-01-01T00:00:00.200', 'b')],
    [ev('2026-01-01T00:00:00.100', 'a'), ev('2026-01-01T00:00:00.300', 'c')]
  ])
  const got: string[] = []
  const p = make(s, { onEvents: (e) => got.push(...e.map((x) => JSON.parse(x.json).event.text)) })
  p.start()
  await s.done
  p.stop()
  t.same(got, ['a', 'b', 'c'])
})

t.test('failures are retried with backoff from the last position; a streak is logged once', async (t) => {
  const warns: string[] = []
  const infos: string[] = []
  const fail = new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, 'down', { status: 503 })
  const s = scripted([[ev('2026-01-01T00:00:00.100', 'a')], fail, fail, fail, [ev('2026-01-01T00:00:00.100', 'a'), ev('2026-01-01T00:00:00.200', 'b')]])
  const got: string[] = []
  const p = make(s, {
    onEvents: (e) => got.push(...e.map((x) => JSON.parse(x.json).event.text)),
    log: { warn: (_o, m) => warns.push(m), info: (_o, m) => infos.push(m) }
  }, { backoffMaxMs: 4 })
  p.start()
  await s.done
  p.stop()
  t.same(got, ['a', 'b'])
  t.equal(warns.length, 1, 'one warning for the streak')
  t.equal(infos.length, 1, 'one recovery line')
  const ms = Date.parse('2026-01-01T00:00:00.100Z')
  t.same(s.asked.slice(1, 5), [ms - 1, ms - 1, ms - 1, ms - 1], 'retries ask from the last delivered time, inclusive')
})

t.test('a 401 stops polling and reports the channel as rejected', async (t) => {
  const s = scripted([new BridgeError(ErrorCode.UPSTREAM_REJECTED, 'no', { status: 401, call: 'events' })])
  let reported: (e: BridgeError) => void = () => {}
  const fatal = new Promise<BridgeError>((resolve) => { reported = resolve })
  const p = make(s, { onEvents: () => {}, onFatal: (e) => { reported(e) } })
  p.start()
  t.equal((await fatal).details?.status, 401)
  t.equal(p.stopped, true)
  t.equal(s.asked.length, 1, 'no retry against a refused token')
})

t.test('starting from a cursor skips through its event, or reports a gap', async (t) => {
  const T = '2026-01-01T00:00:00.100'
  const ms = Date.parse(T + 'Z')
  const first = ev(T, 'a')
  const { eventHash } = await import('../../dist/feed/cursor.js')
  const hash = eventHash(JSON.stringify(first))
  const s = scripted([[first, ev(T, 'b'), ev('2026-01-01T00:00:00.200', 'c')]])
  const got: string[] = []
  let outcome: unknown
  const p = make(s, { onEvents: (e) => got.push(...e.map((x) => JSON.parse(x.json).event.text)), onStart: (o) => { outcome = o } }, { start: { ts: ms, hash } })
  p.start()
  await s.done
  p.stop()
  t.same(outcome, { resumed: true })
  t.same(got, ['b', 'c'])
  t.equal(s.asked[0], ms - 1)

  const s2 = scripted([[ev(T, 'b')]])
  let outcome2: { resumed: boolean, gap?: string } | undefined
  const got2: string[] = []
  const p2 = make(s2, { onEvents: (e) => got2.push(...e.map((x) => JSON.parse(x.json).event.text)), onStart: (o) => { outcome2 = o } }, { start: { ts: ms, hash } })
  p2.start()
  await s2.done
  p2.stop()
  t.equal(outcome2?.resumed, false)
  t.match(outcome2?.gap, /no longer/)
  t.same(got2, [], 'what the client will reload from history is not replayed')
})

t.test('a full page is followed at once by the next, asked by time', async (t) => {
  const T = '2026-01-01T00:00:00.100'
  const page = Array.from({ length: 250 }, (_, i) => ev(T, `p${i}`))
  const rest = Array.from({ length: 30 }, (_, i) => ev(T, `p${250 + i}`))
  const s = scripted([page, rest, [...page.slice(0, 10)]])
  const got: string[] = []
  const p = make(s, { onEvents: (e) => got.push(...e.map((x) => JSON.parse(x.json).event.text)) })
  p.start()
  await s.done
  p.stop()
  t.equal(got.length, 280, 'all 280 events of the millisecond')
  t.equal(new Set(got).size, 280)
  const ms = Date.parse(T + 'Z')
  t.same(s.asked.slice(0, 3), [0, ms - 1, ms - 1], 'never on the server-side cursor')
})

t.test('a poll that fails before poll() returns is retried, and so is one answered at once', async (t) => {
  const asked: Array<number | undefined> = []
  let held: (() => void) | undefined
  const done = new Promise<void>((resolve) => { held = resolve })
  const upstream: PollUpstream = {
    poll: (_q, ts, sink) => {
      asked.push(ts)
      // Every answer comes before poll() returns, as from a dispatcher that fails at once.
      if (asked.length === 1) sink.pollFailed(new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, 'closed'))
      else if (asked.length === 2) sink.pollAnswered([ev('2026-01-01T00:00:00.100', 'a')])
      else held?.()
      return { cancel: () => {} }
    }
  }
  const got: string[] = []
  const p = make({ upstream }, { onEvents: (e) => got.push(...e.map((x) => JSON.parse(x.json).event.text)) })
  p.start()
  await done
  p.stop()
  t.same(got, ['a'])
  t.ok(asked.length >= 3, 'it kept polling')
})

t.test('a busy conversation is never held back by the credit: the settle poll after new events costs none', async (t) => {
  // Every poll is answered at once and the clock barely moves, so any poll that drew on the credit would
  // leave the next one waiting for a refill that does not come: all eight events arrive only if none draws.
  const base = Date.parse('2026-12-01T10:00:00.123Z')
  const answers: Array<Array<Record<string, unknown>>> = []
  for (let i = 0; i < 8; i++) answers.push([ev(new Date(base + i * 107).toISOString(), `m${i}`)], [])
  const s = scripted(answers)
  let clock = base
  const got: FeedEvent[] = []
  const p = new Poller({ upstream: s.upstream, traits: new ChannelTraits(), backoff: { baseMs: 1, maxMs: 2 }, now: () => (clock += 2) },
    Q, { onEvents: (e) => { got.push(...e) }, onFatal: () => {}, log: quiet }, { ts: base, hash: '' })
  p.start()
  t.teardown(() => { p.stop() })
  const timer = new Promise<void>((resolve) => { setTimeout(resolve, 3000).unref() })
  await Promise.race([s.done, timer])
  t.same(got.map((e) => (JSON.parse(e.json) as { event: { text: string } }).event.text), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'])
})

/** An event element stamped at `ms` (the upstream's local-time format, no zone). */
const at = (ms: number, text: string): Record<string, unknown> => ev(new Date(ms).toISOString().replace('Z', ''), text)
const textsOf = (events: FeedEvent[]): string[] => events.map((e) => (JSON.parse(e.json) as { event: { text: string } }).event.text)

/**
 * An upstream that answers each poll by its `ts` with `answer(ts)`, and holds
 * the poll (answers nothing) when that is undefined; `held` resolves at the
 * first poll it holds.
 */
function byTime (answer: (ts: number, polls: number) => Array<Record<string, unknown>> | undefined): { upstream: PollUpstream, asked: number[], held: Promise<void> } {
  const asked: number[] = []
  let idle: (() => void) | undefined
  const held = new Promise<void>((resolve) => { idle = resolve })
  const upstream: PollUpstream = {
    poll: (_q, ts, sink) => {
      asked.push(ts as number)
      const page = answer(ts as number, asked.length)
      if (page === undefined) idle?.()
      else setImmediate(() => { sink.pollAnswered(page) })
      return { cancel: () => {} }
    }
  }
  return { upstream, asked, held }
}

t.test('a full page of known events that began a millisecond early does not end its step: the rest of it comes', async (t) => {
  // An inclusive server, 250 events a page, holding 200 events stamped A and 100 stamped A + 1. The first page
  // ends within A + 1; the next asks from A + 1 as A (the bound is not known yet), which is a full page of events
  // already taken. That proves nothing of A + 1: the rest of it (the last 50) must still be asked for.
  const A = Date.parse('2026-01-01T00:00:00.100Z')
  const stored = Array.from({ length: 300 }, (_, i) => ({ ts: i < 200 ? A : A + 1, e: at(i < 200 ? A : A + 1, `m${i}`) }))
  const s = byTime((ts) => {
    const page = stored.filter((x) => x.ts >= ts).slice(0, 250).map((x) => x.e)
    return page.length > 0 ? page : undefined
  })
  const got: string[] = []
  const p = make(s, { onEvents: (e) => got.push(...textsOf(e)) }, { start: { ts: A - 10, hash: '' } })
  p.start()
  await s.held
  p.stop()
  t.same(got, stored.map((x) => (x.e.event as { text: string }).text), 'all 300, each once, in order')
  t.ok(s.asked.includes(A + 1), `asked from A + 1 itself once the bound showed inclusive (asked ${s.asked.map((x) => x - A).join(', ')} from A)`)
})

t.test('a connection that starts in the step of an event another connection had moves past it, and its poll is held', async (t) => {
  // The client's other tab had `x`, stamped in this connection's starting millisecond: it is not this
  // connection's, and every answer from that millisecond holds it. Asking from there again and again would be
  // answered at once each time; the poll must move past it and wait.
  const { eventHash } = await import('../../dist/feed/cursor.js')
  const A = Date.parse('2026-01-01T00:00:00.100Z')
  const x = at(A, 'x')
  const s = byTime((ts, polls) => ts > A || polls > 20 ? undefined : [x])
  const got: string[] = []
  const p = make(s, { onEvents: (e) => got.push(...textsOf(e)) }, { start: { ts: A, hash: '' }, before: [{ ts: A, hash: eventHash(JSON.stringify(x)) }] })
  p.start()
  await s.held
  p.stop()
  t.same(got, [], 'the other connection\'s event is not delivered')
  t.ok(s.asked.length <= 4, `a few polls, then one held past it (asked ${s.asked.map((v) => v - A).join(', ')} from A)`)
  t.ok((s.asked.at(-1) as number) > A, 'the held poll asks from after it')
})
