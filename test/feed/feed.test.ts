import t from 'tap'
import { startBridge, TOKEN } from '../fixtures/bridge.js'
import { pollsHeld, pollsHeldEach } from '../fixtures/waits.js'

t.test('two sockets with one cid share one upstream poll; two cids make two', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab-1' })
  const ticket = a.welcome.ticket as string
  const clientId = a.welcome.clientId as string
  const b = await h.client({ auth: ticket, cid: 'tab-1' })
  await pollsHeld(h.emulator, { clientId, cid: 'tab-1' }, 1)

  // Events make the poll loop turn over several times; it must never overlap itself.
  for (let i = 0; i < 3; i++) {
    h.emulator.agentReply(TOKEN, clientId, `reply ${i}`)
    await Promise.all([a, b].map(async (c) => await c.next((f) => f.type === 'event' && JSON.stringify(f).includes(`reply ${i}`))))
  }
  t.equal(h.emulator.maxActivePolls(TOKEN, clientId, 'tab-1'), 1, 'one poll at a time for (client, tab-1)')

  const c = await h.client({ auth: ticket, cid: 'tab-2' })
  await pollsHeld(h.emulator, { clientId, cid: 'tab-2' }, 1)
  // tab-1 may be between two polls (a re-read of its recent events): wait for both to be held.
  await pollsHeld(h.emulator, { clientId }, 2)
  t.equal(h.emulator.maxActivePolls(TOKEN, clientId, 'tab-2'), 1)
  t.ok(c)
})

t.test('an agent reply reaches every socket of its client once, and no other client', async (t) => {
  const h = await startBridge(t)
  const a1 = await h.client({ cid: 'x' })
  const clientId = a1.welcome.clientId as string
  const a2 = await h.client({ auth: a1.welcome.ticket, cid: 'x' })
  const a3 = await h.client({ auth: a1.welcome.ticket, cid: 'y' })
  const other = await h.client({ cid: 'x' })
  await pollsHeldEach(h.emulator, [{ clientId, count: 2 }, { clientId: other.welcome.clientId as string, count: 1 }])

  h.emulator.agentReply(TOKEN, clientId, 'hello from a person')
  const isReply = (f: Record<string, unknown>): boolean => f.type === 'event' && JSON.stringify(f).includes('hello from a person')
  for (const c of [a1, a2, a3]) {
    const f = await c.next(isReply)
    t.type(f.cursor, 'string')
    t.ok((f.cursor as string).length <= 200, 'cursor of at most 200 characters')
    t.equal((f.event as { type: string }).type, 'agentResponse')
    t.notOk(JSON.stringify(f).includes(TOKEN), 'the channel token is removed')
  }
  // A later event proves the earlier one was not repeated meanwhile.
  h.emulator.agentReply(TOKEN, clientId, 'second')
  for (const c of [a1, a2, a3]) {
    await c.next((f) => f.type === 'event' && JSON.stringify(f).includes('second'))
    t.equal(c.frames.filter(isReply).length, 1, 'delivered once')
  }
  t.equal(other.frames.filter((f) => f.type === 'event').length, 0, 'the other client got nothing')
})

t.test('own requests and their answers appear once in each socket; the inclusive ts never doubles', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab' })
  const b = await h.client({ auth: a.welcome.ticket, cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (let i = 0; i < 5; i++) {
    const r = await a.request({ type: 'send', id: `m${i}`, query: `message ${i}` })
    t.equal(r.ok, true)
  }
  const last = await a.request({ type: 'send', id: 'last', query: 'the end' })
  const qid = (last.result as { questionId: string }).questionId
  for (const c of [a, b]) {
    await c.next((f) => f.type === 'event' && (f.event as { type: string }).type === 'botResponse' && JSON.stringify(f).includes(qid))
    const events = c.events().map((f) => JSON.stringify(f.event))
    t.equal(new Set(events).size, events.length, 'no event twice')
    t.equal(events.length, 12, 'a clientRequest and a botResponse for each of six sends')
    const cursors = c.events().map((f) => f.cursor)
    t.equal(new Set(cursors).size, cursors.length, 'every event has its own cursor')
  }
  // Right after a burst: a settle poll, the held poll, a re-read; never a tight loop.
  const before = h.emulator.requests.filter((r) => r.route === 'events').length
  await new Promise((resolve) => setTimeout(resolve, 300))
  const after = h.emulator.requests.filter((r) => r.route === 'events').length
  t.ok(after - before <= 3, `polls in 300 ms: ${after - before}`)
})

t.test('the poll asks from upstream timestamps even when the upstream clock is hours off', async (t) => {
  const h = await startBridge(t, {}, { clockOffsetMs: -3 * 3600_000 })
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, clientId, 'one')
  await a.next((f) => JSON.stringify(f).includes('"one"') || JSON.stringify(f).includes('one'))
  h.emulator.agentReply(TOKEN, clientId, 'two')
  await a.next((f) => f.type === 'event' && JSON.stringify(f).includes('two'))
  const polls = h.emulator.requests.filter((r) => r.route === 'events' && r.query.ts !== undefined)
  for (const p of polls) {
    t.ok(Math.abs(Number(p.query.ts) - (Date.now() - 3 * 3600_000)) < 60_000, 'ts follows the upstream clock')
  }
  t.equal(a.events().length, 2)
})
