import t from 'tap'
import { EventLog, MAX_EVENTS, ReadCursors, matchEvents } from '../../dist/emulator/event-log.js'
import { flagsOf } from '../../dist/emulator/profiles.js'

const agent = (n: number) => ({ type: 'agentResponse', event: { n } })
const other = (n: number) => ({ type: 'stateUpdate', event: { n } })
const ns = (match: { events: Array<{ event: Record<string, unknown> }> }): unknown[] => match.events.map(e => e.event.n)

t.test('positionAt finds the first entry at or after a time, shared milliseconds included', async t => {
  const log = new EventLog()
  for (const [n, at] of [[0, 10], [1, 20], [2, 20], [3, 20], [4, 30]] as const) log.append(at, agent(n))
  t.equal(log.positionAt(0), 0)
  t.equal(log.positionAt(20), 1)
  t.equal(log.positionAt(20.5), 4)
  t.equal(log.positionAt(31), 5, 'past the end')
  t.same([...log.from(3)].map(e => e.item.event.n), [3, 4])
})

t.test('trimming keeps absolute positions', async t => {
  const log = new EventLog(10)
  for (let n = 0; n < 25; n++) log.append(n, agent(n))
  t.equal(log.end, 25)
  const kept = [...log.from(0)]
  t.ok(kept.length <= 10)
  t.equal(kept.at(-1)?.position, 24)
  t.equal(kept[0]?.item.event.n, kept[0]?.position, 'position still names the same entry')
  t.equal(log.positionAt(0), kept[0]?.position, 'a time before the kept entries maps to the oldest kept')
})

t.test('matchEvents: ts, cursor, cid, type filter and the cap', async t => {
  const log = new EventLog()
  const cursors = new ReadCursors()
  log.append(1, agent(0))
  cursors.see('c', log.end)
  log.append(2, other(1))
  log.append(2, agent(2))
  t.same(ns(matchEvents(log, cursors, { cid: undefined, ts: 2, all: true })), [1, 2], 'inclusive ts')
  t.same(ns(matchEvents(log, cursors, { cid: 'c', ts: 0, all: true })), [1, 2], 'cid hides what came before it')
  t.same(ns(matchEvents(log, cursors, { cid: 'c', ts: 0, all: false })), [2])
  t.same(ns(matchEvents(log, cursors, { cid: 'c', ts: undefined, all: true })), [1, 2], 'the cursor starts where the cid was seen')
  const match = matchEvents(log, cursors, { cid: 'c', ts: undefined, all: false })
  t.equal(match.next, 3, 'next is past the last returned')
  t.same(ns(matchEvents(log, cursors, { cid: 'new', ts: undefined, all: true })), [], 'an unseen key reads from the end')
  t.same(ns(matchEvents(log, cursors, { cid: undefined, ts: 0, all: true }, 2)), [2], 'scanFrom skips what was already checked')

  for (let n = 0; n < MAX_EVENTS + 5; n++) log.append(3, agent(100 + n))
  const capped = matchEvents(log, cursors, { cid: undefined, ts: 3, all: true })
  t.equal(capped.events.length, MAX_EVENTS)
  t.equal(capped.events[0]?.event.n, 100, 'oldest first')
  t.equal(capped.next, 3 + MAX_EVENTS)
})

t.test('a late-stamped entry: ts is bisected on the running latest time and each entry is checked', async t => {
  const log = new EventLog()
  const cursors = new ReadCursors()
  for (const [n, at] of [[0, 10], [1, 30], [2, 20], [3, 40]] as const) log.append(at, agent(n))
  t.equal(log.positionAt(25), 1, 'nothing before the first entry that reaches ts can match')
  t.equal(log.positionAt(30, true), 3, 'exclusive: past every entry that reaches no later than ts')
  t.same(ns(matchEvents(log, cursors, { cid: undefined, ts: 20, all: true })), [1, 2, 3], 'in storage order')
  t.same(ns(matchEvents(log, cursors, { cid: undefined, ts: 25, all: true })), [1, 3], 'the late entry is older than ts')
  const exclusive = flagsOf(['exclusive-ts'])
  t.same(ns(matchEvents(log, cursors, { cid: undefined, ts: 20, all: true }, 0, exclusive)), [1, 3])
})
