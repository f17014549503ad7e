import t, { type Test } from 'tap'
import { existsSync, statSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startEmulator } from '../../dist/emulator/index.js'
import { startBridgeOn, TOKEN, until } from '../fixtures/bridge.js'
import { tempDir } from '../fixtures/processes.js'
import { pollsHeld } from '../fixtures/waits.js'
import type { Frame } from '../fixtures/ws-client.js'

/*
 * HANDOFF_FILE: a graceful stop writes what each connection kept, the next
 * start reads it, and a socket that resumes is welcomed from memory at once
 * instead of waiting for the upstream's first answer (behind the poll gate,
 * in a restart storm). Its poll then goes on from the last event handed over.
 */

const textOf = (f: Frame): string => (f.event as { event?: { text?: string } }).event?.text ?? ''
const isAgent = (f: Frame): boolean => f.type === 'event' && (f.event as { type?: string }).type === 'agentResponse'

async function emulator (t: Test): Promise<Awaited<ReturnType<typeof startEmulator>>> {
  const emu = await startEmulator({ tokens: [TOKEN], holdMs: 2000 })
  t.teardown(async () => { await emu.close() })
  return emu
}

t.test('after a restart, a resume is welcomed from what the stop handed over, before the upstream answers', async (t) => {
  const emu = await emulator(t)
  const file = join(tempDir(t), 'handoff')
  const h1 = await startBridgeOn(t, emu, { HANDOFF_FILE: file })
  const a = await h1.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(emu, { clientId, cid: 'tab' }, 1)
  for (const text of ['e1', 'e2', 'e3']) {
    emu.agentReply(TOKEN, clientId, text)
    await a.next((f) => isAgent(f) && textOf(f) === text)
  }
  const cursor = a.events()[0]?.cursor as string
  await h1.app.close()
  t.ok(existsSync(file), 'the stop wrote the handoff file')
  t.equal(statSync(file).mode & 0o777, 0o600, 'for its owner alone: it holds conversations')
  t.notMatch(readFileSync(file, 'utf8'), TOKEN, 'and never the channel token')

  emu.agentReply(TOKEN, clientId, 'while down')
  // The new process's first poll is answered late: a welcome that waited for it would come with 'while down'.
  emu.faults.add({ route: 'events', kind: 'delay', delayMs: 3000, count: 1 })
  const h2 = await startBridgeOn(t, emu, { HANDOFF_FILE: file })
  t.notOk(existsSync(file), 'the start read the file once and deleted it')

  const b = await h2.connect()
  const welcome = await b.hello({ auth: a.welcome.ticket, cid: 'tab', resume: cursor })
  const welcomedAt = Date.now()
  t.equal(welcome.resumed, true, 'resumed')
  const late = await b.next((f) => isAgent(f) && textOf(f) === 'while down', 10_000)
  const lateAt = Date.now()
  t.same(b.events().map(textOf), ['e2', 'e3', 'while down'], 'what was kept, then what came while down: each once, in order')
  t.ok(lateAt - welcomedAt >= 1500, `the welcome and the kept events came before the upstream's answer (${lateAt - welcomedAt} ms apart)`)
  t.type(late.cursor, 'string')

  emu.agentReply(TOKEN, clientId, 'after')
  await b.next((f) => isAgent(f) && textOf(f) === 'after')
  t.same(b.events().map(textOf), ['e2', 'e3', 'while down', 'after'], 'and the poll goes on from there')
})

t.test('a new connection of a handed-over cid starts afresh; a feed nobody resumes costs the upstream nothing', async (t) => {
  const emu = await emulator(t)
  const file = join(tempDir(t), 'handoff')
  const h1 = await startBridgeOn(t, emu, { HANDOFF_FILE: file })
  const a = await h1.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  const other = await h1.client({ auth: a.welcome.ticket, cid: 'never-back' })
  await pollsHeld(emu, { clientId, cid: 'tab' }, 1)
  await pollsHeld(emu, { clientId, cid: 'never-back' }, 1)
  emu.agentReply(TOKEN, clientId, 'old')
  await a.next(isAgent)
  await other.next(isAgent)
  await h1.app.close()
  // A poll the old process sent as it stopped may still be on its way: the upstream reads it before the connection's end.
  await until(() => emu.connections.open === 0, 5000, 'the connections of the old process to close')

  const polls = (cid: string): number => emu.requests.filter((r) => r.route === 'events' && r.clientId === clientId && r.query.cid === cid).length
  const before = polls('never-back')
  const h2 = await startBridgeOn(t, emu, { HANDOFF_FILE: file })
  const b = await h2.client({ auth: a.welcome.ticket, cid: 'tab' })
  t.equal(b.welcome.resumed, false, 'a hello without a cursor is a new connection')
  // Its start may share a second with 'old' (the new process knows the upstream's time from its Date header
  // only), which the feed that nobody resumed holds: the poll must move past it and be held, not ask again and again.
  await pollsHeld(emu, { clientId, cid: 'tab' }, 1)
  emu.agentReply(TOKEN, clientId, 'new')
  await b.next((f) => isAgent(f) && textOf(f) === 'new')
  t.equal(polls('never-back'), before, 'the cid nobody resumed was not polled')
  const metrics = await (await fetch(`${h2.httpUrl}/metrics`)).text()
  t.match(metrics, /^bridge_upstream_polls_active 1$/m, 'nor counted as polled')
})

t.test('a handoff file that is stale, or not a handoff, is ignored: resumes go to the upstream as without one', async (t) => {
  const emu = await emulator(t)
  const dir = tempDir(t)
  const h1 = await startBridgeOn(t, emu)
  const a = await h1.client({ cid: 'tab' })
  const clientId = a.welcome.clientId as string
  await pollsHeld(emu, { clientId, cid: 'tab' }, 1)
  emu.agentReply(TOKEN, clientId, 'e1')
  emu.agentReply(TOKEN, clientId, 'e2')
  await a.next((f) => isAgent(f) && textOf(f) === 'e2')
  const cursor = a.events()[0]?.cursor as string
  await h1.app.close()

  const cases: Array<[string, string]> = [
    ['stale', JSON.stringify({ handoff: 1, savedAt: Date.now() - 3_600_000, feeds: 0 }) + '\n'],
    ['garbage', '<html>not a handoff</html>\n{"also": "not"}\n'],
    ['empty', '']
  ]
  for (const [name, content] of cases) {
    const file = join(dir, name)
    writeFileSync(file, content)
    const h = await startBridgeOn(t, emu, { HANDOFF_FILE: file })
    t.notOk(existsSync(file), `${name}: read once and deleted`)
    const b = await h.client({ auth: a.welcome.ticket, cid: 'tab', resume: cursor })
    t.equal(b.welcome.resumed, true, `${name}: resumed from the upstream`)
    await b.next((f) => isAgent(f) && textOf(f) === 'e2')
    t.same(b.events().map(textOf), ['e2'], `${name}: nothing lost or twice`)
    await h.app.close()
  }
})
