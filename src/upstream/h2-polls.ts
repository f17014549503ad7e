import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import type { BodyReader } from './body-reader.js'
import { Exchange, Link, type Sessions } from './h2-session.js'

/** The long polls' connections, as ChatApi uses them: undici's Pool, or H2Polls. */
export interface PollDispatcher {
  dispatch: (opts: Dispatcher.DispatchOptions, handler: BodyReader) => boolean
  destroy: () => Promise<void>
}

/** How long connecting, or answering a ping, may take by default (undici's connect timeout). */
const SESSION_TIMEOUT_MS = 10_000

/**
 * Long polls over HTTP/2 on `node:http2` itself: an idle client's held poll
 * is one Node stream and one small Exchange, where undici adds a request
 * with its own listeners and closures per stream (about 5 KB of heap per
 * held poll, and half the CPU of renewing one, in a side-by-side
 * measurement). Up to `streams` polls share a session, at most
 * `connections` sessions are open, and a poll beyond that waits its turn.
 *
 * A poll the server refused before it took it (REFUSED_STREAM, or a GOAWAY
 * that left it out) is sent once more, after a GOAWAY on another session: a
 * GET that was never processed is safe to repeat. Every other failure goes to the
 * handler, which the poller retries with its own backoff.
 *
 * Over TLS the first connection asks for h2 by ALPN; a server that answers
 * with HTTP/1.1 gets every poll through `fallback` (undici) from then on.
 *
 * A connection that does not come up within `timeoutMs` is given up. A poll
 * that times out makes its session prove it is alive with a ping answered
 * within `timeoutMs`; a session on a dead network path (which the operating
 * system may call open for a quarter of an hour) is dropped, so that the
 * next polls go on a new one instead of timing out on it one after another.
 */
export class H2Polls implements PollDispatcher, Sessions {
  private readonly origin: string
  private readonly streams: number
  private readonly connections: number
  readonly timeoutMs: number
  private readonly makeFallback: () => PollDispatcher
  private readonly sessions: Link[] = []
  private readonly waiting: Exchange[] = []
  /** 'probe': TLS and not yet known whether the server speaks h2. */
  private mode: 'h2' | 'h1' | 'probe'
  private probing: Exchange[] | undefined
  private fallback: PollDispatcher | undefined
  /** Set by destroy(): nothing more is sent, and what was under way fails as destroyed. */
  closed = false

  constructor (origin: string, o: { streams: number, connections: number, tls: boolean, timeoutMs?: number, fallback: () => PollDispatcher }) {
    this.origin = origin
    this.streams = o.streams
    this.connections = o.connections
    this.timeoutMs = o.timeoutMs ?? SESSION_TIMEOUT_MS
    this.makeFallback = o.fallback
    this.mode = o.tls ? 'probe' : 'h2'
  }

  dispatch (opts: Dispatcher.DispatchOptions, handler: BodyReader): boolean {
    if (this.mode === 'h1') return (this.fallback as PollDispatcher).dispatch(opts, handler)
    const x = new Exchange(this, opts, handler)
    if (this.closed) {
      x.fail(new undiciErrors.ClientDestroyedError())
      return false
    }
    x.deadline(opts.headersTimeout ?? 30_000)
    if (this.mode === 'probe') this.probe(x)
    else this.send(x)
    return true
  }

  async destroy (): Promise<void> {
    this.closed = true
    for (const x of this.waiting.splice(0)) x.fail(new undiciErrors.ClientDestroyedError())
    for (const x of this.probing?.splice(0) ?? []) x.fail(new undiciErrors.ClientDestroyedError())
    const ends = this.sessions.splice(0).map(async (l) => {
      if (l.session.destroyed) return
      await new Promise<void>((resolve) => {
        l.session.once('close', resolve)
        l.session.destroy()
      })
    })
    await Promise.all([...ends, this.fallback?.destroy()])
  }

  /** Puts the exchange on a session with room, a new one if there is none, or in the queue. */
  send (x: Exchange): void {
    if (x.done) return
    let link: Link | undefined
    // A session that a ping is asking whether it is alive takes polls too: should it not answer, they fail with it
    // within the ping's time and are retried, where avoiding it would open a connection for every timed-out poll.
    for (const l of this.sessions) {
      if (l.open && l.active < l.max) { link = l; break }
    }
    if (link === undefined) {
      if (this.sessions.length >= this.connections) {
        this.waiting.push(x)
        return
      }
      link = this.connect(undefined)
    }
    link.take(x)
  }

  /** A stream ended on `link`: one waiting poll may go. */
  freed (): void {
    // Polls cancelled while they waited are skipped, so that the slot goes to one that still wants it.
    for (let x = this.waiting.shift(); x !== undefined; x = this.waiting.shift()) {
      if (!x.done) {
        this.send(x)
        return
      }
    }
  }

  /** A session is gone: its slot is free, and so are the waiting polls' chances. */
  dropped (link: Link): void {
    const i = this.sessions.indexOf(link)
    if (i >= 0) this.sessions.splice(i, 1)
    while (this.waiting.length > 0 && !this.closed && this.sessions.length < this.connections) this.freed()
  }

  private connect (socket: tls.TLSSocket | undefined): Link {
    const session = http2.connect(this.origin, {
      settings: { enablePush: false },
      ...(socket === undefined ? {} : { createConnection: () => socket })
    })
    const link = new Link(this, session, this.streams)
    this.sessions.push(link)
    return link
  }

  /** The first TLS connection: h2 by ALPN, or HTTP/1.1 through the fallback for good. */
  private probe (x: Exchange): void {
    if (this.probing !== undefined) {
      this.probing.push(x)
      return
    }
    this.probing = [x]
    const url = new URL(this.origin)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const socket = tls.connect({
      host,
      port: url.port === '' ? 443 : Number(url.port),
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ['h2', 'http/1.1']
    })
    const settle = (err: Error | undefined): void => {
      socket.off('secureConnect', onSecure)
      socket.off('error', settle)
      socket.off('timeout', onTimeout)
      socket.setTimeout(0)
      const queued = this.probing ?? []
      this.probing = undefined
      if (err !== undefined) {
        socket.destroy()
        for (const q of queued) q.fail(err)
        return
      }
      if (socket.alpnProtocol === 'h2') {
        this.mode = 'h2'
        this.connect(socket)
        for (const q of queued) this.send(q)
        return
      }
      socket.destroy()
      this.mode = 'h1'
      this.fallback = this.makeFallback()
      for (const q of queued) {
        if (q.done) continue
        q.handOff()
        this.fallback.dispatch({ ...q.opts, origin: this.origin }, q.handler)
      }
    }
    const onSecure = (): void => { settle(undefined) }
    const onTimeout = (): void => { settle(new undiciErrors.ConnectTimeoutError()) }
    socket.setTimeout(this.timeoutMs)
    socket.once('timeout', onTimeout)
    socket.once('secureConnect', onSecure)
    socket.once('error', settle)
  }
}
