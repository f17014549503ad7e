import t from 'tap'
import { SignJWT } from 'jose'
import { startBridge, TOKEN, until, type Harness } from '../fixtures/bridge.js'
import { pollsHeldAtLeast } from '../fixtures/waits.js'
import type { Frame, TestClient } from '../fixtures/ws-client.js'
import { ExpirySchedule, type Expiring } from '../../dist/socket/expiry-schedule.js'
import { refreshCredential } from '../../dist/socket/credential-refresh.js'
import type { Authenticator } from '../../dist/socket/auth.js'

const SECRET = 'jwt-secret-for-refresh-tests-0123'
const JWT_ENV = { AUTH_MODE: 'jwt', JWT_SECRET: SECRET }

/** `exp` is in whole seconds, as JWTs have it. */
const nowS = (): number => Math.floor(Date.now() / 1000)

async function jwt (sub: string, exp: number): Promise<string> {
  return await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
}

/** Resolves with the close code and the moment the client saw the close. */
async function closedAt (c: TestClient, timeoutMs = 6000): Promise<{ code: number, at: number }> {
  const code = await c.closed(timeoutMs)
  return { code, at: Date.now() }
}

const agentEvent = (text: string) => (f: Frame): boolean => f.type === 'event' && (f.event as { event?: { text?: string } }).event?.text === text

/** The number of sockets the bridge's expiry schedule holds. */
const scheduled = (h: Harness): number => (h.app.bridge.sessions as unknown as { expiries: { size: number } }).expiries.size

const ticketExpiry = (ticket: string): { c: string, e: number } =>
  JSON.parse(Buffer.from(ticket.split('.')[1] as string, 'base64url').toString()) as { c: string, e: number }

t.test('a socket whose JWT expires is closed with 4401 at its exp, and the welcome said when', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const exp = nowS() + 2
  const c = await h.client({ auth: await jwt('user-1', exp) })
  t.equal(c.welcome.expiresAt, exp * 1000, 'expiresAt is the exp, in epoch ms')
  t.equal(scheduled(h), 1)
  const { code, at } = await closedAt(c)
  t.equal(code, 4401)
  t.equal(c.closeReason, 'credential missing, invalid or expired')
  t.ok(at >= exp * 1000, `not before its exp (${at - exp * 1000} ms after)`)
  t.ok(at < exp * 1000 + 1000, 'and within a second of it')
  t.equal(scheduled(h), 0, 'the schedule lets go of the socket')

  // A socket that closes first leaves nothing scheduled either.
  const d = await h.client({ auth: await jwt('user-1', nowS() + 300) })
  t.equal(scheduled(h), 1)
  d.close()
  await d.closed()
  // The bridge's end of the close comes a moment after the client's.
  await until(() => scheduled(h) === 0, 5000, 'the closed socket to leave the schedule')
  t.pass('nothing kept for a closed socket')
})

t.test('an auth frame with a fresh JWT keeps the socket past the old exp, events flowing, until the new exp', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const exp1 = nowS() + 2
  const c = await h.client({ auth: await jwt('user-2', exp1), cid: 'tab' })
  await pollsHeldAtLeast(h.emulator, { clientId: 'user-2', cid: 'tab' }, 1)
  h.emulator.agentReply(TOKEN, 'user-2', 'before the refresh')
  await c.next(agentEvent('before the refresh'))

  const exp2 = exp1 + 2
  const result = await c.request({ type: 'auth', id: 'refresh-1', auth: await jwt('user-2', exp2) })
  t.same(result, { type: 'result', id: 'refresh-1', ok: true, result: { expiresAt: exp2 * 1000 } })

  // Published once the old exp has passed: the socket must still be there to carry it.
  const timer = setTimeout(() => { h.emulator.agentReply(TOKEN, 'user-2', 'after the old exp') }, exp1 * 1000 + 200 - Date.now())
  t.teardown(() => { clearTimeout(timer) })
  const late = await c.next(agentEvent('after the old exp'))
  t.ok(late !== undefined, 'an event after the old exp came through')
  t.equal(c.closeCode, undefined, 'still open after the old exp')

  const { code, at } = await closedAt(c)
  t.equal(code, 4401, 'closed at the new exp')
  t.ok(at >= exp2 * 1000 && at < exp2 * 1000 + 1000, `at the new exp (${at - exp2 * 1000} ms after)`)
  t.equal(c.frames.filter((f) => f.type === 'welcome').length, 1, 'one socket, one welcome')
  t.equal(c.events().length, 2, 'each event once')
})

t.test('an auth frame for another sub is refused; the socket stays its client\'s and keeps its exp', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const exp = nowS() + 2
  const c = await h.client({ auth: await jwt('user-a', exp) })
  const refused = await c.request({ type: 'auth', id: 'other', auth: await jwt('user-b', exp + 60) })
  t.match(refused, { ok: false, error: { code: 'BAD_CREDENTIAL', message: /another client/ } })
  t.notMatch(JSON.stringify(refused), /user-b/, 'the other client is not named back')

  const sent = await c.request({ type: 'send', id: 'who', query: 'who am I' })
  t.equal(sent.ok, true)
  const sends = h.emulator.requests.filter((r) => r.route === 'send')
  t.same(sends.map((r) => r.clientId), ['user-a'], 'the send went upstream as the socket\'s own client')

  const { code, at } = await closedAt(c)
  t.equal(code, 4401, 'the refused credential did not move the expiry')
  t.ok(at >= exp * 1000 && at < exp * 1000 + 1000)
})

t.test('bad auth frames get an error result and the socket stays open', async (t) => {
  const h = await startBridge(t, JWT_ENV)
  const early = await h.connect()
  early.send({ type: 'auth', id: 'early', auth: 'x' })
  t.match(await early.next((f) => f.type === 'result' && f.id === 'early'), { ok: false, error: { code: 'NOT_READY' } })

  const c = await h.client({ auth: await jwt('user-3', nowS() + 300) })
  t.match(await c.request({ type: 'auth', id: 'garbage', auth: 'not-a-jwt' }), { ok: false, error: { code: 'BAD_CREDENTIAL', message: 'JWT is not valid' } })
  t.match(await c.request({ type: 'auth', id: 'expired', auth: await jwt('user-3', nowS() - 60) }), { ok: false, error: { code: 'BAD_CREDENTIAL', message: 'JWT expired' } })
  t.match(await c.request({ type: 'auth', id: 'too-long', auth: await jwt('user-3', nowS() + 2 * 86_400) }), { ok: false, error: { code: 'BAD_CREDENTIAL', message: /JWT_MAX_AGE_S/ } })
  t.match(await c.request({ type: 'auth', id: 'no-auth' }), { ok: false, error: { code: 'BAD_REQUEST', message: /^auth: auth/ } })
  t.match(await c.request({ type: 'auth', id: 'number', auth: 7 }), { ok: false, error: { code: 'BAD_REQUEST', message: /^auth: auth/ } })
  t.equal((await c.request({ type: 'getState', id: 'still-here' })).ok, true, 'the socket still works')
  t.equal(c.closeCode, undefined)
})

t.test('auth frames count against the rate limit', async (t) => {
  const h = await startBridge(t, { ...JWT_ENV, RATE_LIMIT_BURST: '2', RATE_LIMIT_PER_S: '0.1' })
  const c = await h.client({ auth: await jwt('user-4', nowS() + 300) })
  const token = await jwt('user-4', nowS() + 600)
  for (const id of ['a1', 'a2', 'a3']) c.send({ type: 'auth', id, auth: token })
  const results = await Promise.all(['a1', 'a2', 'a3'].map(async (id) => await c.next((f) => f.type === 'result' && f.id === id)))
  t.same(results.map((r) => r.ok), [true, true, false])
  t.match(results[2], { error: { code: 'RATE_LIMITED' } })
})

t.test('ticket mode: the welcome tells the ticket\'s expiry, and an auth frame with the ticket renews it', async (t) => {
  const h = await startBridge(t, { TICKET_TTL_S: '3600' })
  const before = nowS()
  const a = await h.client()
  const ticket = a.welcome.ticket as string
  const { c: clientId, e } = ticketExpiry(ticket)
  t.equal(clientId, a.welcome.clientId)
  t.equal(a.welcome.expiresAt, e * 1000, 'the expiry of the ticket in the welcome')
  t.ok(e >= before + 3600 && e <= nowS() + 3600, 'TICKET_TTL_S from now')

  const renewed = await a.request({ type: 'auth', id: 'renew', auth: ticket })
  t.equal(renewed.ok, true)
  const result = renewed.result as { expiresAt: number, ticket: string }
  t.type(result.ticket, 'string', 'a fresh ticket to keep')
  t.equal(ticketExpiry(result.ticket).c, clientId, 'for the same client')
  t.equal(result.expiresAt, ticketExpiry(result.ticket).e * 1000)

  const b = await h.client()
  t.match(await a.request({ type: 'auth', id: 'theirs', auth: b.welcome.ticket }), { ok: false, error: { code: 'BAD_CREDENTIAL' } }, 'another visitor\'s ticket is refused')
  t.match(await a.request({ type: 'auth', id: 'forged', auth: `${ticket}x` }), { ok: false, error: { code: 'BAD_CREDENTIAL', message: /signature/ } })
})

t.test('an authenticator that fails for another reason than the credential is not taken for a refusal', async (t) => {
  const broken: Authenticator = { mode: 'jwt', authenticate: async () => { throw new TypeError('a bug') } }
  await t.rejects(refreshCredential(broken, 'user-5', 'token'), TypeError)
})

/** An item of a schedule, for the unit tests below. */
class Item implements Expiring {
  expiresAt = 0
  constructor (readonly name: string) {}
}

t.test('the expiry schedule: each item once, in order, never early; moved and dropped items follow', async (t) => {
  const fired: string[] = []
  let done: () => void = () => {}
  const schedule = new ExpirySchedule<Item>((item) => {
    fired.push(`${item.name}${Date.now() >= (wanted.get(item.name) ?? Infinity) ? '' : ' (early)'}`)
    if (item.name === 'last') done()
  })
  // The schedule's timer is unref'd, as a watch should be: this one keeps the process up while the test waits.
  const keepAlive = setTimeout(() => {}, 10_000)
  t.teardown(() => { schedule.stop(); clearTimeout(keepAlive) })
  const wanted = new Map<string, number>()
  const at = (item: Item, ms: number): void => { wanted.set(item.name, ms); schedule.set(item, ms) }
  const now = Date.now()
  const [past, soon, moved, dropped, last] = ['past', 'soon', 'moved', 'dropped', 'last'].map((n) => new Item(n)) as [Item, Item, Item, Item, Item]
  // A second apart at least: items due in the same second fire in the order they were set.
  at(last, now + 2700)
  at(soon, now + 400)
  at(past, now - 5000)
  at(moved, now + 100)
  at(moved, now + 1500)
  at(dropped, now + 300)
  schedule.delete(dropped)
  schedule.delete(dropped)
  t.equal(schedule.size, 4)
  await new Promise<void>((resolve) => { done = resolve })
  t.same(fired, ['past', 'soon', 'moved', 'last'])
  t.equal(schedule.size, 0)
  t.equal(past.expiresAt, 0, 'a fired item is no longer scheduled')
})

t.test('the expiry schedule: far times do not overflow the timer, churn does not grow it, stop ends it', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.name) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  let fired = 0
  const schedule = new ExpirySchedule<Item>(() => { fired++ })
  const far = new Item('far')
  schedule.set(far, Date.now() + 30 * 86_400_000)
  // Sockets that come and go, each due in a second of its own.
  for (let i = 0; i < 1000; i++) {
    const item = new Item(`churn-${i}`)
    schedule.set(item, Date.now() + 60_000 + i * 1000)
    schedule.delete(item)
  }
  t.equal(schedule.size, 1)
  t.ok((schedule as unknown as { heap: number[] }).heap.length < 100, 'emptied seconds are compacted away')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings.filter((w) => w === 'TimeoutOverflowWarning'), [])
  schedule.stop()
  schedule.set(new Item('after stop'), Date.now() - 1)
  t.equal(schedule.size, 1, 'a stopped schedule takes nothing new')
  t.equal(fired, 0)
})
