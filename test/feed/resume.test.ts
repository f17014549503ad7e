import t from 'tap'
import { startBridge, startBridgeOn, TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { Frame } from '../fixtures/ws-client.js'

const texts = (frames: Frame[]): string[] => frames.map((f) => ((f.event as { event: { text?: string } }).event.text ?? ''))

t.test('resume from a cursor on the same bridge: nothing lost, nothing twice', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (const text of ['e1', 'e2', 'e3']) {
    h.emulator.agentReply(TOKEN, clientId, text)
    await a.next((f) => f.type === 'event' && texts([f])[0] === text)
  }
  const cursor = a.events()[1]!.cursor as string // processed e2 only
  a.close()
  await a.closed()
  h.emulator.agentReply(TOKEN, clientId, 'e4')
  const b = await h.client({ auth: a.welcome.ticket, cid: 'tab', resume: cursor })
  t.equal(b.welcome.resumed, true)
  t.equal(b.welcome.gap, undefined)
  await b.next((f) => f.type === 'event' && texts([f])[0] === 'e4')
  h.emulator.agentReply(TOKEN, clientId, 'e5')
  await b.next((f) => f.type === 'event' && texts([f])[0] === 'e5')
  t.same(texts(b.events()), ['e3', 'e4', 'e5'])
})

t.test('resume after the bridge restarted (same TICKET_SECRET), from the upstream', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  // Two events in the same upstream millisecond are likely here: send makes a clientRequest and a botResponse.
  await a.request({ type: 'send', id: '1', query: 'first' })
  await a.next((f) => f.type === 'event' && (f.event as { type: string }).type === 'botResponse')
  const cursor = a.events().at(-1)!.cursor as string
  const cursorOfRequest = a.events()[0]!.cursor as string
  await h.app.close()
  h.emulator.agentReply(TOKEN, clientId, 'while you were away')

  const h2 = await startBridgeOn(t, h.emulator)
  const b = await h2.client({ auth: a.welcome.ticket, cid: 'tab', resume: cursor })
  t.equal(b.welcome.resumed, true, 'resumed on a new process')
  await b.next((f) => f.type === 'event' && texts([f])[0] === 'while you were away')
  t.equal(b.events().length, 1, 'only what came after the cursor')

  // A cursor one event earlier resumes right after that event: the botResponse comes again, once.
  const c = await h2.client({ auth: a.welcome.ticket, cid: 'tab2-same-client', resume: cursorOfRequest })
  t.equal(c.welcome.resumed, false, 'a cursor of another cid is not honoured')
  t.match(c.welcome.gap, { reason: /not issued/ })
})

t.test('a cursor that cannot be honoured gives resumed:false and a gap reason', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, clientId, 'x')
  const ev = await a.next((f) => f.type === 'event')

  const bad = await h.client({ auth: a.welcome.ticket, cid: 'tab', resume: 'garbage' })
  t.equal(bad.welcome.resumed, false)
  t.match(bad.welcome.gap, { reason: /malformed/ })

  const other = await h.client({ cid: 'tab', resume: ev.cursor })
  t.equal(other.welcome.resumed, false, 'another client cannot use this cursor')
  t.match(other.welcome.gap, { reason: /not issued/ })
  t.equal(other.events().length, 0, 'and sees none of its events')

  const fresh = await h.client({ auth: a.welcome.ticket, cid: 'tab' })
  t.equal(fresh.welcome.resumed, false)
  t.equal(fresh.welcome.gap, undefined, 'no resume asked, no gap')
})

t.test('the welcome cursor resumes a connection from its first event, after its feed ended', async (t) => {
  const h = await startBridge(t, { POLL_LINGER_MS: '0' })
  const a = await h.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  t.type(a.welcome.cursor, 'string', 'a fresh welcome carries a cursor')
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  for (const text of ['e1', 'e2']) {
    h.emulator.agentReply(TOKEN, clientId, text)
    await a.next((f) => f.type === 'event' && texts([f])[0] === text)
  }
  // The client processed none of them (it crashed, say) and comes back after its feed is gone.
  a.close()
  await a.closed()
  await until(() => h.app.bridge.hub.stats().feeds === 0, 5000, 'the feed to end')
  h.emulator.agentReply(TOKEN, clientId, 'e3')
  const b = await h.client({ auth: a.welcome.ticket, cid: 'tab', resume: a.welcome.cursor })
  t.equal(b.welcome.resumed, true)
  await b.next((f) => f.type === 'event' && texts([f])[0] === 'e3')
  t.same(texts(b.events()), ['e1', 'e2', 'e3'])
})

t.test('the welcome cursor resumes from the first event while the feed lives on beyond memory', async (t) => {
  const h = await startBridge(t, { EVENT_BUFFER: '1' })
  const keeper = await h.client({ cid: 'tab' })
  const clientId = keeper.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId, cid: 'tab' }, 1)
  const a = await h.client({ auth: keeper.welcome.ticket, cid: 'tab' })
  for (const text of ['e1', 'e2', 'e3']) {
    h.emulator.agentReply(TOKEN, clientId, text)
    await keeper.next((f) => f.type === 'event' && texts([f])[0] === text)
  }
  const b = await h.client({ auth: keeper.welcome.ticket, cid: 'tab', resume: a.welcome.cursor })
  t.equal(b.welcome.resumed, true, 'read back from the upstream')
  h.emulator.agentReply(TOKEN, clientId, 'e4')
  await b.next((f) => f.type === 'event' && texts([f])[0] === 'e4')
  t.same(texts(b.events()), ['e1', 'e2', 'e3', 'e4'])
})

t.test('a resume from a welcome cursor gets what came after the welcome, though another tab had it already', async (t) => {
  const h = await startBridge(t, { POLL_LINGER_MS: '0' })
  const other = await h.client({ cid: 'other' })
  const clientId = other.welcome.clientId as string
  const quiet = await h.client({ auth: other.welcome.ticket, cid: 'quiet' })
  await pollsHeld(h.emulator, [{ clientId, cid: 'other' }, { clientId, cid: 'quiet' }], 1)
  // The quiet tab drops before it sees the event; the other tab keeps it in memory.
  const welcome = quiet.welcome.cursor as string
  quiet.close()
  await quiet.closed()
  await pollsHeld(h.emulator, { clientId, cid: 'quiet' }, 0)
  h.emulator.agentReply(TOKEN, clientId, 'after the welcome')
  await other.next((f) => f.type === 'event' && texts([f])[0] === 'after the welcome')
  const back = await h.client({ auth: other.welcome.ticket, cid: 'quiet', resume: welcome })
  t.equal(back.welcome.resumed, true)
  await back.next((f) => f.type === 'event' && texts([f])[0] === 'after the welcome')
  t.same(texts(back.events()), ['after the welcome'])
})
