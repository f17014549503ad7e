import t from 'tap'
import { buildApp } from '../../dist/app.js'
import { deriveKey, TicketAuth } from '../../dist/socket/auth.js'
import { loadConfig } from '../../dist/config.js'
import { startEmulator } from '../../dist/emulator/index.js'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { openClient, welcomedClient } from '../fixtures/ws-client.js'

const SECRET = 'test-ticket-secret-0123456789'

t.test('an expired ticket, and a ticket of another client with its cursor, are refused', async (t) => {
  const h = await startBridge(t, { TICKET_SECRET: SECRET })
  const past = new TicketAuth(deriveKey(Buffer.from(SECRET), 'ticket'), 60, () => Date.now() - 3600_000)
  const c = await h.connect()
  c.send({ type: 'hello', auth: past.issue('someone') })
  t.equal(await c.closed(), 4401, 'expired')

  const victim = await h.client({ cid: 'tab' })
  const victimId = victim.welcome.clientId as string
  await pollsHeld(h.emulator, { clientId: victimId, cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, victimId, 'private')
  const ev = await victim.next((f) => f.type === 'event')
  const attacker = await h.client({ cid: 'tab', resume: ev.cursor })
  t.equal(attacker.welcome.resumed, false)
  t.not(attacker.welcome.clientId, victimId)
  h.emulator.agentReply(TOKEN, victimId, 'also private')
  await victim.next((f) => JSON.stringify(f).includes('also private'))
  t.notOk(JSON.stringify(attacker.frames).includes('private'), 'nothing of the victim reaches the attacker')
})

t.test('another client\'s questionId gets nothing and changes nothing', async (t) => {
  const h = await startBridge(t)
  const victim = await h.client()
  const sent = await victim.request({ type: 'send', id: '1', query: 'my secret question' })
  const questionId = (sent.result as { questionId: string }).questionId
  const attacker = await h.client()
  const read = await attacker.request({ type: 'getStatus', id: 'a', questionId })
  t.match(read.error, { code: 'UPSTREAM_REJECTED', status: 404 })
  const write = await attacker.request({ type: 'setStatus', id: 'b', questionId, status: 'READ' })
  t.equal(write.ok, false)
  const history = await attacker.request({ type: 'history', id: 'c' })
  t.notOk(JSON.stringify(history).includes('my secret question'))
  const own = await victim.request({ type: 'getStatus', id: '2', questionId })
  t.match(own.result, { status: 'SENT' }, 'the victim\'s status is untouched')
})

t.test('a deeply nested frame and an oversized one do not hurt the server', async (t) => {
  const h = await startBridge(t)
  const bystander = await h.client()
  const a = await h.client()
  a.send('{"type":"setState","id":"d","state":' + '['.repeat(30_000) + ']'.repeat(30_000) + '}')
  t.match(await a.next((f) => f.type === 'result' && f.id === 'd'), { ok: false, error: { code: 'BAD_REQUEST' } })
  const b = await h.client()
  b.send('x'.repeat(70_000))
  t.equal(await b.closed(), 1009)
  t.equal((await bystander.request({ type: 'getState', id: 'ok' })).ok, true)
})

t.test('a flood of connections that never say hello is cleaned up; others are served', async (t) => {
  const h = await startBridge(t, { HELLO_TIMEOUT_MS: '300' })
  const flood = await Promise.all(Array.from({ length: 300 }, async () => await openClient(t, h.wsUrl)))
  const legit = await h.client()
  t.equal((await legit.request({ type: 'unreadCount', id: '1' })).ok, true, 'served during the flood')
  const codes = await Promise.all(flood.map(async (c) => await c.closed()))
  t.ok(codes.every((c) => c === 4408), 'every silent socket closed with 4408')
  await until(() => h.app.bridge.sessions.size === 1, 5000, 'only the legit socket left')
})

t.test('thousands of sockets opened and closed leave nothing behind', async (t) => {
  const h = await startBridge(t, { POLL_LINGER_MS: '0', POLL_STARTS_PER_S: '100000' })
  const clientIds: string[] = []
  for (let round = 0; round < 4; round++) {
    const batch = await Promise.all(Array.from({ length: 500 }, async (_, i) => await h.client({ cid: `r${round}-${i}` })))
    for (const c of batch) clientIds.push(c.welcome.clientId as string)
    await until(() => h.app.bridge.hub.stats().feeds === 500, 10_000, 'feeds')
    for (const c of batch) c.close()
    await Promise.all(batch.map(async (c) => await c.closed()))
  }
  await until(() => h.app.bridge.sessions.size === 0 && h.app.bridge.hub.stats().feeds === 0, 10_000, 'everything to end')
  t.same(h.app.bridge.hub.stats(), { feeds: 0, polling: 0, subscribers: 0, pausedFeeds: 0, full: false })
  await pollsHeld(h.emulator, clientIds.map((clientId) => ({ clientId })), 0, 10_000)
  t.pass('no upstream poll is left')
})

t.test('the channel token, tickets and credentials never reach a log line', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 300 })
  t.teardown(async () => { await emulator.close() })
  const lines: string[] = []
  const config = loadConfig({ LOG_LEVEL: 'trace', TICKET_SECRET: SECRET, BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '20', REQUEST_TIMEOUT_MS: '300' })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logStream: { write: (l) => { lines.push(l) } } })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/ws`
  const c = await welcomedClient(t, url)
  const welcome = c.welcome
  const ticket = welcome.ticket as string
  await c.request({ type: 'send', id: '1', query: 'hi' })
  for (const kind of ['html', 'notJson', 'reset', 'truncated'] as const) {
    emulator.faults.add({ route: 'send', kind })
    await c.request({ type: 'send', id: kind, query: 'hi' })
  }
  emulator.faults.add({ route: 'events', kind: 'status', status: 503, count: 3 })
  emulator.agentReply(TOKEN, welcome.clientId as string, 'x')
  await c.next((f) => f.type === 'event' && JSON.stringify(f).includes('"x"'))
  const d = await openClient(t, url)
  d.send({ type: 'hello', auth: ticket + 'tampered' })
  await d.closed()
  await welcomedClient(t, url, { auth: ticket })
  // The failed polls come after the event that the held poll brought: wait for their line.
  await until(() => lines.some((l) => l.includes('upstream poll failed')), 10_000, 'the failures to be logged')
  const all = lines.join('')
  t.match(all, /hello refused/, 'the refused ticket is logged')
  t.match(all, /upstream poll failed/, 'the upstream failures are logged')
  t.notOk(all.includes(TOKEN), 'no channel token')
  t.notOk(all.includes(ticket), 'no ticket')
  t.ok(all.includes('"clientId"'), 'lines carry the clientId')
})
