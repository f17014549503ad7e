import t, { type Test } from 'tap'
import http2 from 'node:http2'
import https from 'node:https'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { startTcpProxy } from '../fixtures/tcp-proxy.js'
import { until } from '../fixtures/bridge.js'
import net, { type AddressInfo } from 'node:net'
import { BodyReader } from '../../dist/upstream/body-reader.js'
import { pollPool, type UpstreamPoolOptions } from '../../dist/upstream/upstream-pool.js'
import type { PollDispatcher } from '../../dist/upstream/h2-polls.js'

// The servers' certificate is self-signed, for localhost.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
const tlsFiles = new URL('../fixtures/tls/', import.meta.url)
const TLS = { key: readFileSync(new URL('localhost.key', tlsFiles)), cert: readFileSync(new URL('localhost.crt', tlsFiles)) }
const { NGHTTP2_REFUSED_STREAM } = http2.constants

type Outcome = { status: number, text: string } | Error

/** One poll as ChatApi makes it, told apart by its path; `outcome` settles once. */
class Poll extends BodyReader {
  sent = false
  readonly outcome: Promise<Outcome>
  private settle!: (o: Outcome) => void

  constructor () {
    super()
    this.outcome = new Promise((resolve) => { this.settle = resolve })
  }

  override onRequestSent (): void { this.sent = true }
  protected answered (status: number, text: string): void { this.settle({ status, text }) }
  protected failed (err: unknown): void { this.settle(err as Error) }
}

function poll (polls: PollDispatcher, origin: string, path: string, timeoutMs = 10_000): Poll {
  const p = new Poll()
  polls.dispatch({ origin, path, method: 'GET', headers: { accept: 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }, p)
  return p
}

const H2C: UpstreamPoolOptions = { http2: 'h2c', streams: 100, pollConnections: 10, callConnections: 2 }
const AUTO: UpstreamPoolOptions = { ...H2C, http2: 'auto' }

async function listen (t: Test, server: http2.Http2Server | http2.Http2SecureServer | https.Server | net.Server, scheme: string): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    await new Promise((resolve) => { server.close(resolve) })
  })
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function close (t: Test, polls: PollDispatcher): void {
  t.teardown(async () => { await polls.destroy() })
}

/** Counts the server's sessions and streams, and answers each stream with its path once `ready` says so. */
function h2Server (t: Test, server: http2.Http2Server | http2.Http2SecureServer) {
  const seen = { sessions: 0, streams: 0, open: 0, most: 0, versions: new Set<string>() }
  const held: Array<() => void> = []
  const sessionsSeen: http2.ServerHttp2Session[] = []
  server.on('session', (s) => {
    seen.sessions++
    sessionsSeen.push(s)
    t.teardown(() => { s.destroy() })
  })
  server.on('request', (req, res) => {
    seen.streams++
    seen.open++
    seen.most = Math.max(seen.most, seen.open)
    seen.versions.add(req.httpVersion)
    req.on('close', () => { seen.open-- })
    held.push(() => { res.end(JSON.stringify({ path: req.url })) })
  })
  /** Answers the polls held so far. */
  const answer = (): void => { for (const f of held.splice(0)) f() }
  return { seen, held, answer, sessionsSeen }
}

/** A cleartext HTTP/2 server as h2Server counts it, and the bridge's polls to it. */
async function h2c (t: Test, o: Partial<UpstreamPoolOptions> = {}): Promise<ReturnType<typeof h2Server> & { url: string, polls: PollDispatcher }> {
  const server = http2.createServer()
  const s = h2Server(t, server)
  const url = await listen(t, server, 'http')
  const polls = pollPool(url, { ...H2C, ...o })
  close(t, polls)
  return { ...s, url, polls }
}

t.test('over TLS, a server that offers h2 by ALPN carries every poll on one session', async (t) => {
  const server = http2.createSecureServer({ ...TLS, allowHTTP1: true })
  const s = h2Server(t, server)
  const url = await listen(t, server, 'https')
  const polls = pollPool(url, AUTO)
  close(t, polls)
  // Five sent before the first connection is up wait for its ALPN answer.
  const ps = Array.from({ length: 5 }, (_, i) => poll(polls, url, `/events?n=${i}`))
  await until(() => s.held.length === 5, 5000, 'five held polls')
  t.ok(ps.every((p) => p.sent), 'each poll was told it was sent')
  s.answer()
  const outcomes = await Promise.all(ps.map(async (p) => await p.outcome))
  t.same(outcomes, ps.map((_, i) => ({ status: 200, text: JSON.stringify({ path: `/events?n=${i}` }) })))
  t.same([...s.seen.versions], ['2.0'])
  t.equal(s.seen.sessions, 1)
})

t.test('over TLS, a server of HTTP/1.1 alone gets every poll over HTTP/1.1', async (t) => {
  const versions = new Set<string>()
  const server = https.createServer(TLS, (req, res) => {
    versions.add(req.httpVersion)
    res.end(JSON.stringify({ path: req.url }))
  })
  const url = await listen(t, server, 'https')
  const polls = pollPool(url, AUTO)
  close(t, polls)
  const first = await Promise.all([1, 2, 3].map(async (i) => await poll(polls, url, `/events?n=${i}`).outcome))
  t.same(first.map((o) => (o as { text: string }).text), [1, 2, 3].map((i) => JSON.stringify({ path: `/events?n=${i}` })))
  // Once known, the protocol is not asked again.
  t.same(await poll(polls, url, '/events?n=4').outcome, { status: 200, text: JSON.stringify({ path: '/events?n=4' }) })
  t.same([...versions], ['1.1'])
})

t.test('a TLS handshake that fails fails the polls waiting on it, and the next poll tries again', async (t) => {
  const server = https.createServer(TLS, (req, res) => { res.end('{}') })
  const url = await listen(t, server, 'https')
  let refuse = true
  server.prependListener('secureConnection', (socket) => { if (refuse) socket.destroy() })
  const polls = pollPool(url, AUTO)
  close(t, polls)
  const failed = await Promise.all([poll(polls, url, '/a').outcome, poll(polls, url, '/b').outcome])
  t.ok(failed.every((o) => o instanceof Error), 'both polls failed')
  refuse = false
  t.same(await poll(polls, url, '/c').outcome, { status: 200, text: '{}' })
})

t.test('a poll the server refused before taking it is sent once more; refused twice, it fails', async (t) => {
  const server = http2.createServer()
  let refusals = 1
  const paths: string[] = []
  server.on('stream', (stream, headers) => {
    paths.push(String(headers[':path']))
    // The server's side of a refused stream reports it as an error.
    stream.on('error', () => {})
    if (refusals-- > 0) stream.close(NGHTTP2_REFUSED_STREAM)
    else {
      stream.respond({ ':status': 200 })
      stream.end('{"ok":true}')
    }
  })
  server.on('session', (s) => { t.teardown(() => { s.destroy() }) })
  const url = await listen(t, server, 'http')
  const polls = pollPool(url, H2C)
  close(t, polls)
  t.same(await poll(polls, url, '/once').outcome, { status: 200, text: '{"ok":true}' })
  t.same(paths, ['/once', '/once'], 'the refused poll went again')

  refusals = 2
  const err = await poll(polls, url, '/twice').outcome
  t.type(err, Error)
  t.equal((err as { code?: string }).code, 'UPSTREAM_STREAM_RESET')
  t.same(paths.slice(2), ['/twice', '/twice'], 'no third try')
})

/**
 * HTTP/2 by hand, for what Node's server will not send: a GOAWAY that says
 * it took none of the streams (as a server does that stops taking new ones
 * while a request is in flight). Its first connection answers the first
 * request with that; later ones answer each with 200 and `body`.
 */
async function goawayServer (t: Test, body: string): Promise<{ url: string, connections: () => number }> {
  const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
    const head = Buffer.alloc(9)
    head.writeUIntBE(payload.length, 0, 3)
    head[3] = type
    head[4] = flags
    head.writeUInt32BE(stream, 5)
    return Buffer.concat([head, payload])
  }
  let connections = 0
  const server = net.createServer((socket) => {
    const first = ++connections === 1
    let buf = Buffer.alloc(0)
    let preface = false
    socket.on('error', () => {})
    // SETTINGS (none of ours).
    socket.write(frame(4, 0, 0, Buffer.alloc(0)))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      if (!preface) {
        if (buf.length < 24) return
        buf = buf.subarray(24)
        preface = true
      }
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3)
        if (buf.length < 9 + length) return
        const [type, flags] = [buf[3] as number, buf[4] as number]
        const stream = buf.readUInt32BE(5) & 0x7fffffff
        buf = buf.subarray(9 + length)
        if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)))
        if (type !== 1) continue
        if (first) {
          // GOAWAY: last stream 0, NO_ERROR.
          socket.write(frame(7, 0, 0, Buffer.alloc(8)))
          continue
        }
        // HEADERS with :status 200 (HPACK static index 8), then the body ending the stream.
        socket.write(frame(1, 4, stream, Buffer.from([0x88])))
        socket.write(frame(0, 1, stream, Buffer.from(body)))
      }
    })
    t.teardown(() => { socket.destroy() })
  })
  return { url: await listen(t, server, 'http'), connections: () => connections }
}

t.test('a GOAWAY that leaves a poll out sends it on a new session', async (t) => {
  const { url, connections } = await goawayServer(t, '{"second":true}')
  const polls = pollPool(url, H2C)
  close(t, polls)
  t.same(await poll(polls, url, '/p', 3000).outcome, { status: 200, text: '{"second":true}' })
  t.equal(connections(), 2)
})

t.test('a server that stops taking requests (GOAWAY) still answers the polls it holds; new ones go on a new session', async (t) => {
  const { polls, url, ...s } = await h2c(t)
  const first = poll(polls, url, '/held-across')
  await until(() => s.held.length === 1, 5000, 'the first poll held')
  // As nginx does after http2_max_requests: no new streams here, the open ones go on.
  s.sessionsSeen[0]?.goaway()
  const second = poll(polls, url, '/after-goaway')
  await until(() => s.held.length === 2, 5000, 'the second poll held')
  t.equal(s.seen.sessions, 2, 'on a second session')
  s.answer()
  t.same(await first.outcome, { status: 200, text: JSON.stringify({ path: '/held-across' }) })
  t.same(await second.outcome, { status: 200, text: JSON.stringify({ path: '/after-goaway' }) })
})

t.test('no more sessions than allowed: a poll beyond their streams waits its turn', async (t) => {
  const { polls, url, ...s } = await h2c(t, { streams: 2, pollConnections: 1 })
  const ps = [1, 2, 3, 4, 5].map((i) => poll(polls, url, `/events?n=${i}`))
  await until(() => s.held.length === 2, 5000, 'two held polls')
  t.notOk(ps[2]?.sent, 'the third waits')
  // Each answer frees a stream for one waiting poll.
  for (let answered = 0; answered < 5;) {
    await until(() => s.held.length > 0, 5000, 'a held poll')
    answered += s.held.length
    s.answer()
  }
  const outcomes = await Promise.all(ps.map(async (p) => await p.outcome))
  t.ok(outcomes.every((o) => !(o instanceof Error) && o.status === 200), 'every poll answered')
  t.equal(s.seen.sessions, 1)
  t.equal(s.seen.most, 2, 'never more than two streams at once')
})

t.test('a poll cancelled while it waits gives its turn to the next', async (t) => {
  const { polls, url, ...s } = await h2c(t, { streams: 1, pollConnections: 1 })
  const first = poll(polls, url, '/first')
  const gaveUp = poll(polls, url, '/gave-up')
  const next = poll(polls, url, '/next')
  await until(() => s.held.length === 1, 5000, 'the first held')
  gaveUp.cancel()
  s.answer()
  t.same(await first.outcome, { status: 200, text: JSON.stringify({ path: '/first' }) })
  await until(() => s.held.length === 1, 5000, 'the next held')
  s.answer()
  t.same(await next.outcome, { status: 200, text: JSON.stringify({ path: '/next' }) })
  t.equal(s.seen.streams, 2, 'the cancelled poll was never sent')
})

t.test('a poll unanswered in time fails as a timeout, and its stream is cancelled', async (t) => {
  const { polls, url, ...s } = await h2c(t)
  const err = await poll(polls, url, '/slow', 200).outcome
  t.type(err, Error)
  t.equal((err as { code?: string }).code, 'UND_ERR_HEADERS_TIMEOUT')
  await until(() => s.seen.open === 0, 5000, 'the server to see the stream closed')
})

t.test('a cancelled poll closes its stream; destroy fails the held and the waiting', async (t) => {
  const { polls, url, ...s } = await h2c(t, { streams: 1, pollConnections: 1 })
  const cancelled = poll(polls, url, '/cancelled')
  await until(() => s.seen.open === 1, 5000, 'the poll held')
  cancelled.cancel()
  await until(() => s.seen.open === 0, 5000, 'the server to see it closed')

  const held = poll(polls, url, '/held')
  const waiting = poll(polls, url, '/waiting')
  await until(() => s.seen.open === 1, 5000, 'one poll held')
  await polls.destroy()
  const [a, b] = await Promise.all([held.outcome, waiting.outcome])
  t.equal((a as { code?: string }).code, 'UND_ERR_DESTROYED', 'the held poll fails as destroyed, not as answered')
  t.equal((b as { code?: string }).code, 'UND_ERR_DESTROYED', 'the waiting poll too')
  t.type(await poll(polls, url, '/after').outcome, Error, 'a poll after destroy fails')
})

t.test('a connection that never comes up is given up, and the next poll makes a new one', async (t) => {
  const h2 = http2.createServer()
  const s = h2Server(t, h2)
  let accepted = 0
  // The first connection is accepted and never spoken to; the next ones reach the HTTP/2 server.
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    t.teardown(() => { socket.destroy() })
    if (++accepted > 1) h2.emit('connection', socket)
  })
  const url = await listen(t, server, 'http')
  const polls = pollPool(url, { ...H2C, sessionTimeoutMs: 300 })
  close(t, polls)
  const err = await poll(polls, url, '/first', 5000).outcome
  t.equal((err as { code?: string }).code, 'UPSTREAM_SESSION_TIMEOUT', String(err))
  const next = poll(polls, url, '/next')
  await until(() => s.held.length === 1, 5000, 'the next poll held')
  s.answer()
  t.same(await next.outcome, { status: 200, text: JSON.stringify({ path: '/next' }) })
  t.equal(accepted, 2)
})

t.test('a poll that times out on a dead network path makes its session answer a ping, and a session that cannot is replaced', async (t) => {
  const server = http2.createServer()
  const s = h2Server(t, server)
  const proxy = await startTcpProxy(t, await listen(t, server, 'http'))
  const url = proxy.via('http://127.0.0.1:1').replace(/\/$/, '')
  const polls = pollPool(url, { ...H2C, sessionTimeoutMs: 300 })
  close(t, polls)
  const first = poll(polls, url, '/first')
  await until(() => s.held.length === 1, 5000, 'the first held')
  s.answer()
  t.same(await first.outcome, { status: 200, text: JSON.stringify({ path: '/first' }) })

  // The path dies, but neither end is told: the session looks open.
  proxy.blackhole()
  const lost = await poll(polls, url, '/lost', 200).outcome
  t.equal((lost as { code?: string }).code, 'UND_ERR_HEADERS_TIMEOUT')
  // Within the ping's time the dead session is dropped; the next poll goes on a new connection.
  await until(() => proxy.open() === 0, 5000, 'the dead session closed')
  const later = poll(polls, url, '/later')
  await until(() => s.held.length === 1, 5000, 'the next poll held')
  t.equal(proxy.accepted(), 2)
  s.answer()
  t.same(await later.outcome, { status: 200, text: JSON.stringify({ path: '/later' }) })
})
