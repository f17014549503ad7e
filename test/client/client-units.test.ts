import t from 'tap'
import type { WelcomeFrame as ServerWelcome, EventFrame as ServerEvent, ResultFrame as ServerResult, ErrorFrame as ServerError } from '../../dist/socket/protocol.js'
import { SUBPROTOCOL as SERVER_SUBPROTOCOL } from '../../dist/socket/protocol.js'
import { CloseCode as ServerCloseCode, closeReason as serverCloseReason } from '../../dist/socket/errors.js'
import {
  backoffDelay, slowDownDelay, closeAction, closeMeaning, CLOSE_CODES, MemoryStorage, SUBPROTOCOL,
  type KeyValueStorage, type WelcomeFrame, type EventFrame, type ResultFrame, type ErrorFrame
} from '../../packages/client/src/index.js'
// By the package's name, as the server imports it: the server's table must be this very object, not a copy.
import { CloseCode, closeReason } from '@chatapi-bridge/client'
import { Emitter } from '../../packages/client/src/emitter.js'
import { EventStream } from '../../packages/client/src/event-stream.js'
import { ClientStore, defaultStorage } from '../../packages/client/src/storage.js'

t.test('backoff: full jitter below min(max, base * 2^n)', async (t) => {
  const b = { baseMs: 100, maxMs: 1000 }
  t.equal(backoffDelay(0, b, () => 0), 0, 'the lowest draw retries at once')
  t.same([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, b, () => 0.999999)), [99, 199, 399, 799, 999, 999], 'the ceiling doubles up to the cap')
  t.equal(backoffDelay(2, b, () => 0.5), 200)
  t.equal(backoffDelay(-3, b, () => 0.5), 50, 'a negative attempt counts as the first')
  t.equal(backoffDelay(5000, b, () => 0.5), 500, 'a huge attempt does not overflow')
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(i % 12, b)
    t.ok(d >= 0 && d < Math.min(1000, 100 * 2 ** (i % 12)), 'within bounds with Math.random')
    if (d < 0) break
  }
  t.equal(slowDownDelay(b, () => 0), 500, 'after 4429: at least half the cap')
  t.equal(slowDownDelay(b, () => 0.999999), 999, 'and below the cap')
})

t.test('close codes: the table of the protocol', async (t) => {
  for (const code of [1003, 1009, 4401, 4403, 4404, 4502]) t.equal(closeAction(code), 'stop', `${code} stops`)
  for (const code of [1000, 1001, 1006, 1011, 1012, 4408, 4409, 4999]) t.equal(closeAction(code), 'reconnect', `${code} reconnects`)
  t.equal(closeAction(4429), 'slow-down')
  t.equal(closeAction(1013), 'slow-down')
  t.equal(closeMeaning(4401), 'credential missing, invalid or expired')
  t.equal(closeMeaning(1006), 'connection closed (1006)')
  for (const code of Object.values(ServerCloseCode)) t.ok(CLOSE_CODES[code] !== undefined, `the client knows ${code}, which the server uses`)
})

/** True when A and B are one type, not merely assignable one way. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

t.test('the server\'s frame types and close codes are the client\'s', async (t) => {
  // Checked by the compiler (tsc covers test/): each line fails to compile if the two ends' types differ.
  const same: [Same<ServerWelcome, WelcomeFrame>, Same<ServerEvent, EventFrame>, Same<ServerResult, ResultFrame>, Same<ServerError, ErrorFrame>] = [true, true, true, true]
  t.same(same, [true, true, true, true])
  const welcome: ServerWelcome = { type: 'welcome', clientId: 'c', cid: 'x', resumed: true, heartbeatMs: 1, channel: 'default' }
  const asClient: WelcomeFrame = welcome
  const event: ServerEvent = { type: 'event', cursor: 'c1', event: { type: 'agentResponse', event: {} } }
  const result: ServerResult = { type: 'result', id: '1', ok: false, error: { code: 'X', message: 'm' } }
  const asResult: ResultFrame = result
  const error: ServerError = { type: 'error', code: 'X', message: 'm' }
  const asError: ErrorFrame = error
  t.ok(asClient && event && asResult && asError, 'compiles')
  t.equal(SUBPROTOCOL, SERVER_SUBPROTOCOL)
  t.equal(ServerCloseCode, CloseCode, 'the server closes with the client\'s codes')
  t.equal(serverCloseReason, closeReason, 'and the client\'s reasons')
  for (const code of Object.values(CloseCode)) {
    const bytes = new TextEncoder().encode(closeReason[code]).length
    t.ok(bytes > 0 && bytes <= 123, `the reason of ${code} fits a close frame (${bytes} bytes)`)
  }
})

t.test('emitter: on, once, off, and a throwing listener', async (t) => {
  class E extends Emitter<{ a: number, b: string }> {
    errors: string[] = []
    fire<K extends 'a' | 'b'> (name: K, v: { a: number, b: string }[K]): void { this.emit(name, v) }
    protected override onListenerError (err: unknown, event: string): void { this.errors.push(`${event}: ${(err as Error).message}`) }
  }
  const e = new E()
  const got: unknown[] = []
  const off = e.on('a', (v) => { got.push(v) })
  e.once('a', (v) => { got.push(`once ${v}`) })
  e.on('a', () => { throw new Error('boom') })
  e.fire('a', 1)
  e.fire('a', 2)
  off()
  e.fire('a', 3)
  e.fire('b', 'nobody listens')
  t.same(got, [1, 'once 1', 2])
  t.same(e.errors, ['a: boom', 'a: boom', 'a: boom'])
  const plain = new (class extends Emitter<{ x: number }> { fire (): void { this.emit('x', 1) } })()
  plain.on('x', () => { throw new Error('swallowed') })
  t.doesNotThrow(() => { plain.fire() }, 'by default a listener error goes nowhere')
})

t.test('event stream: buffered values, waiting readers, end and return', async (t) => {
  let returned = 0
  const s = new EventStream<number>(() => { returned++ })
  s.push(1)
  s.push(2)
  t.same(await s.next(), { value: 1, done: false })
  t.same(await s.next(), { value: 2, done: false })
  const waiting = s.next()
  s.push(3)
  t.same(await waiting, { value: 3, done: false })
  const pending = s.next()
  s.push(4)
  s.end()
  s.push(5)
  t.same(await pending, { value: 4, done: false })
  t.same(await s.next(), { value: undefined, done: true })
  s.end()

  const looped: number[] = []
  const s2 = new EventStream<number>(() => { returned++ })
  s2.push(1)
  s2.push(2)
  for await (const v of s2) {
    looped.push(v)
    break
  }
  t.same(looped, [1])
  t.equal(returned, 1, 'a break returns the iterator')
  t.same(await s2.next(), { value: undefined, done: true }, 'and drops what was buffered')
})

t.test('storage: namespaced keys, and a storage that throws costs nothing', async (t) => {
  const mem = new MemoryStorage()
  const a = new ClientStore(mem, 'ws://a/v1/ws#')
  const b = new ClientStore(mem, 'ws://b/v1/ws#')
  a.ticket = 'T'
  a.setCursor('tab-1', 'c1')
  a.setCursor('tab-2', 'c2')
  t.equal(a.ticket, 'T')
  t.equal(b.ticket, undefined, 'another bridge, another ticket')
  t.equal(a.cursor('tab-1'), 'c1')
  t.equal(a.cursor('tab-2'), 'c2', 'one cursor per cid')
  t.equal(mem.getItem('chatapi-bridge:ws://a/v1/ws#:cursor:tab-1'), 'c1')
  a.setCursor('tab-1', undefined)
  t.equal(a.cursor('tab-1'), undefined)

  const broken: KeyValueStorage = {
    getItem: () => { throw new Error('denied') },
    setItem: () => { throw new Error('quota') },
    removeItem: () => { throw new Error('denied') }
  }
  const s = new ClientStore(broken, 'x')
  t.doesNotThrow(() => { s.ticket = 'T' })
  t.doesNotThrow(() => { s.ticket = undefined })
  t.equal(s.ticket, undefined)
})

t.test('the default storage: localStorage where it works, memory otherwise', async (t) => {
  const g = globalThis as { localStorage?: KeyValueStorage }
  t.teardown(() => { delete g.localStorage })
  t.ok(defaultStorage() instanceof MemoryStorage, 'Node has no localStorage')
  const fake = new MemoryStorage()
  g.localStorage = fake
  t.equal(defaultStorage(), fake)
  t.equal(fake.getItem('__chatapi-bridge-probe__'), null, 'the probe is cleaned up')
  g.localStorage = { getItem: () => null, setItem: () => { throw new Error('SecurityError') }, removeItem: () => {} }
  t.ok(defaultStorage() instanceof MemoryStorage, 'a localStorage that refuses writes is not used')
})
