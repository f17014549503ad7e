import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { BridgeEvent } from '../../packages/client/src/index.js'
import { ChatFeed } from '../../dist/cli/chat-feed.js'
import { historyLines, retryLine, seconds } from '../../dist/cli/chat-format.js'
import { startBridge, startBridgeOn } from '../fixtures/bridge.js'

const root = new URL('../../', import.meta.url)
const chatJs = fileURLToPath(new URL('dist/cli/chat.js', root))

/** A terminal chat process: lines go to its stdin, and its stdout is awaited by pattern. */
class Chat {
  out = ''
  err = ''
  readonly exited: Promise<number | null>
  private readonly child
  private readonly waiters = new Set<() => void>()

  constructor (t: Test, env: Record<string, string>) {
    this.child = spawn(process.execPath, [chatJs], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    t.teardown(() => { if (this.child.exitCode === null) this.child.kill('SIGKILL') })
    this.child.stdout.on('data', (d: Buffer) => {
      this.out += d.toString()
      for (const w of [...this.waiters]) w()
    })
    this.child.stderr.on('data', (d: Buffer) => { this.err += d.toString() })
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      resolve(code)
      for (const w of [...this.waiters]) w()
    }))
  }

  type (line: string): void {
    this.child.stdin.write(`${line}\n`)
  }

  /** Where the output ends now: a later `saw` from here looks at what comes after. */
  mark (): number {
    return this.out.length
  }

  /** Resolves with the first match of `re` in the output from `from` on, already there or still to come. */
  async saw (re: RegExp, from = 0, timeoutMs = 5000): Promise<RegExpExecArray> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(this.out.slice(from))
        if (m !== null) {
          done()
          resolve(m)
        } else if (this.child.exitCode !== null) {
          done()
          reject(new Error(`the chat exited (${this.child.exitCode}) before ${String(re)}:\n${this.out}${this.err}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no ${String(re)} in ${timeoutMs} ms:\n${this.out}${this.err}`))
      }, timeoutMs)
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }
}

function count (text: string, re: RegExp): number {
  return text.split('\n').filter((line) => re.test(line)).length
}


t.test('two terminals of one visitor show one conversation, each message once', async (t) => {
  const h = await startBridge(t)
  const a = new Chat(t, { BRIDGE_URL: h.wsUrl })
  await a.saw(/^connecting to ws:\/\/127\.0\.0\.1:\d+\/v1\/ws…$/m)
  const [, clientId] = await a.saw(/^connected as (\S+) /m)
  a.type('/ticket')
  const [, ticket] = await a.saw(/^(t1\.\S+)$/m)

  const b = new Chat(t, { BRIDGE_URL: h.wsUrl, CHAT_AUTH: ticket as string })
  const [, sameId] = await b.saw(/^connected as (\S+) /m)
  t.equal(sameId, clientId, 'the ticket makes the second terminal the same visitor')

  a.type('hello from A')
  await a.saw(/^bot: You said: hello from A$/m)
  await b.saw(/^you \(another tab\): hello from A$/m)
  await b.saw(/^bot: You said: hello from A$/m)

  b.type('hello from B')
  await b.saw(/^bot: You said: hello from B$/m)
  await a.saw(/^you \(another tab\): hello from B$/m)
  await a.saw(/^bot: You said: hello from B$/m)

  // Each stream is in order: the events of a terminal's own turn came before those of the other's, so any echo is in by now.
  t.equal(count(a.out, /^bot: You said: hello from A$/), 1, 'A: the answer to its own line, once')
  t.equal(count(a.out, /^bot: You said: hello from B$/), 1, 'A: the answer to B\'s line, once')
  t.equal(count(b.out, /^bot: You said: hello from B$/), 1, 'B: the answer to its own line, once')
  t.equal(count(b.out, /^bot: You said: hello from A$/), 1, 'B: the answer to A\'s line, once')
  t.notMatch(a.out, /another tab\): hello from A/, 'A\'s own line is not echoed back')
  t.notMatch(b.out, /another tab\): hello from B/, 'B\'s own line is not echoed back')
  t.notMatch(a.out + b.out, /you said, here/)
  t.notMatch(a.out + b.out, /^> /m, 'no prompt on a pipe')

  const before = a.mark()
  a.type('/history')
  await a.saw(/^you: hello from A\nbot: You said: hello from A {2}Try: .*\nyou: hello from B\nbot: You said: hello from B {2}Try: /m, before)

  a.type('/help')
  await a.saw(/^ {2}\/history /m, before)
  const exit = a.exited
  a.type('/quit')
  t.equal(await exit, 0, '/quit exits 0')
})

t.test('with no bridge listening, it says it is connecting and when it retries', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => { resolve(port) })
    })
  })
  const c = new Chat(t, { BRIDGE_URL: `ws://127.0.0.1:${port}/v1/ws` })
  await c.saw(new RegExp(`^connecting to ws://127\\.0\\.0\\.1:${port}/v1/ws…$`, 'm'))
  await c.saw(/^cannot reach the bridge \(.*ECONNREFUSED.*\); retrying in \d+\.\d s$/m)
  t.pass('a retry line within seconds')
})

t.test('a lost connection is told, with the wait before the next try', async (t) => {
  const h = await startBridge(t)
  const c = new Chat(t, { BRIDGE_URL: h.wsUrl })
  await c.saw(/^connected as /m)
  const from = c.mark()
  await h.app.close()
  await c.saw(/^connection lost \(.+\); retrying in \d+\.\d s$/m, from)
  t.pass('told')
})

t.test('a ticket signed by another secret is dropped, and the chat goes on as a new visitor', async (t) => {
  const h = await startBridge(t)
  // The same emulator behind a bridge with another TICKET_SECRET: as a development bridge after a restart.
  const before = await startBridgeOn(t, h.emulator, { TICKET_SECRET: 'another-ticket-secret-0123456789' })
  const raw = await before.client()
  const dead = raw.welcome.ticket as string
  raw.ws.close()

  const c = new Chat(t, { BRIDGE_URL: h.wsUrl, CHAT_AUTH: dead })
  await c.saw(/^the ticket is no longer valid .*; starting as a new visitor$/m)
  const [, clientId] = await c.saw(/^connected as (\S+) /m)
  t.not(clientId, raw.welcome.clientId, 'a new visitor')
  c.type('still there?')
  await c.saw(/^bot: You said: still there\?$/m)
  c.type('/ticket')
  const [, fresh] = await c.saw(/^(t1\.\S+)$/m)
  t.not(fresh, dead, 'a new ticket')
})

t.test('a JWT the bridge refuses stops the chat with a message', async (t) => {
  const h = await startBridge(t)
  const c = new Chat(t, { BRIDGE_URL: h.wsUrl, CHAT_AUTH: 'eyJhbGciOiJIUzI1NiJ9.e30.bad' })
  await c.saw(/^the bridge refused CHAT_AUTH \(.+\): give a valid, unexpired JWT$/m)
  t.equal(await c.exited, 1)
})

const ev = (type: string, event: Record<string, unknown>): BridgeEvent => ({ type, event, cursor: 'c' })
const answer = (questionId: string, text: string): { questionId: string, timestamp: string, data: { replies: Array<{ type: string, text: string }> } } =>
  ({ questionId, timestamp: '', data: { replies: [{ type: 'text', text }] } })

t.test('the feed holds turn events while a send is in flight, then tells its own from another tab\'s', async (t) => {
  const feed = new ChatFeed()
  feed.sending()
  t.same(feed.event(ev('clientRequest', { questionId: 'q1', query: 'mine' })), [], 'held: it may be this terminal\'s own')
  t.same(feed.event(ev('clientRequest', { questionId: 'q2', query: 'theirs' })), [])
  t.same(feed.event(ev('botResponse', { questionId: 'q1', data: { replies: [{ type: 'text', text: 'to mine' }] } })), [])
  t.same(feed.event(ev('agentResponse', { questionId: 'q9', text: 'an agent' })), ['agent: an agent'], 'not a turn: shown at once')
  t.same(feed.event(ev('botResponse', { questionId: 'q2', data: { replies: [{ type: 'text', text: 'to theirs' }] } })), [])
  t.same(feed.sent(answer('q1', 'to mine')), ['bot: to mine', 'you (another tab): theirs', 'bot: to theirs'])
  t.same(feed.event(ev('botResponse', { questionId: 'q1', data: { replies: [{ type: 'text', text: 'to mine' }] } })), [], 'an answer is shown once')
  t.same(feed.event(ev('webhook', { questionId: 'q9', data: { nlpClass: '/agent', replies: [{ type: 'text', text: 'an agent' }] } })), [],
    'an agent reply by /events and the webhook: once')
  t.same(feed.event(ev('webhook', { questionId: 'q10', data: { replies: [{ type: 'text', text: 'later' }] } })), ['bot: later'])
})

t.test('a failed send releases what it held', async (t) => {
  const feed = new ChatFeed()
  feed.sending()
  feed.sending()
  t.same(feed.event(ev('clientRequest', { questionId: 'q1', event: 'start' })), [])
  t.same(feed.sent(undefined), [], 'still one in flight')
  t.same(feed.sent(answer('q2', 'ok')), ['bot: ok', 'you (another tab): (event start)'])
})

t.test('lines of the format', async (t) => {
  t.equal(seconds(250), '0.3')
  t.equal(seconds(12_400), '12')
  t.equal(retryLine({ state: 'reconnecting', previous: 'open', code: 1006, reason: 'connection closed (1006)', delayMs: 1200 }),
    'connection lost (connection closed (1006)); retrying in 1.2 s')
  t.equal(retryLine({ state: 'reconnecting', previous: 'connecting', delayMs: 0 }), 'cannot reach the bridge; retrying in 0.0 s')
  t.same(historyLines([]), ['(no messages yet)'])
  t.same(historyLines([
    { author: 'client', text: 'hi', raw: null },
    { author: 'bot', text: 'a\nb', replies: [{ type: 'text', text: '<b>a</b>\nb' }, { type: 'buttons', buttons: [{ text: 'Yes' }] }], raw: null },
    { author: 'client', event: { name: 'start' }, raw: null }
  ]), ['you: hi', 'bot: a b  [Yes]', 'you: (event start)'])
})
