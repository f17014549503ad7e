import { BridgeRequestError } from './client-errors.js'
import type { Clock } from './clock.js'
import { isRecord } from './frame-reader.js'
import type { ResultFrame, WelcomeFrame } from './frames.js'
import type { ResumeBook } from './resume-book.js'

/** A function that gives a fresh credential (a JWT, mostly), or undefined when there is none to give. */
export type TokenSource = () => string | undefined | Promise<string | undefined>

/** What the credential asks of the connection it serves. */
export interface CredentialLink {
  /** Writes a frame on the open socket. */
  send: (frame: string) => void
  /** A failure that no promise reports: a token function that threw, a refused refresh. */
  report: (err: unknown) => void
  /** The socket outlived its credential unseen (the machine slept past it): give it up and connect with a fresh one. */
  renew: (reason: string) => void
  /** The bridge took a fresh credential on the open socket, good until `expiresAt`. */
  refreshed: (expiresAt: number) => void
}

/** What to do after a 4401: come back with a fresh token, come back as a new visitor, or stop. */
export type Refusal = 'fresh-token' | 'new-visitor' | 'stop'

/** The refresh comes this long before the expiry, or at 80% of the lifetime left when that is later. */
const REFRESH_LEAD_MS = 30_000
const REFRESH_AT_LIFETIME = 0.8
/**
 * The longest the refresh timer waits in one go. Timers stand still while a
 * machine sleeps, so a long one would wake late by the whole sleep; short
 * steps notice the clock's jump soon after waking.
 */
const MAX_WAIT_MS = 30_000
/** A step that fires this much later than it was set for means the machine slept (or the tab was frozen). */
const SLEPT_MS = 5_000
/** At most one refresh a second: a clock far off the bridge's, which makes every expiry look past, cannot make a loop of them. */
const MIN_GAP_MS = 1_000

/**
 * The client's credential: the one for each hello, and keeping it fresh on
 * the open socket. Before the welcome's `expiresAt` it sends an `auth` frame
 * with a new one (from the token function, or in ticket mode the newest
 * ticket); after a sleep past the expiry it has the socket replaced; after a
 * 4401 it says whether a fresh token may be tried, once in a row.
 */
export class Credential {
  private readonly auth: string | undefined
  private readonly source: TokenSource | undefined
  private readonly resume: ResumeBook
  private readonly clock: Clock
  private readonly link: CredentialLink
  /** Bumped whenever the socket changes, so that a token that comes late goes nowhere. */
  private socketSeq = 0
  private timer: unknown
  /** When the current step's timer should fire, by the clock: later than that by SLEPT_MS means a sleep. */
  private expected = 0
  private expiresAt = 0
  private refreshAt = 0
  private lastRefresh = Number.NEGATIVE_INFINITY
  /** The id of the `auth` frame waiting for its result. */
  private inFlight: string | undefined
  private lastId = 0
  /** A 4401 came and a fresh token is being tried: a second one before a welcome is final. */
  private refused = false

  constructor (options: { auth: string | undefined, source: TokenSource | undefined, resume: ResumeBook, clock: Clock, link: CredentialLink }) {
    this.auth = options.auth
    this.source = options.source
    this.resume = options.resume
    this.clock = options.clock
    this.link = options.link
  }

  /** The last socket was refused (4401) and a fresh token is tried: a hello without one would be refused too. */
  get mustHaveToken (): boolean { return this.refused }

  /** The credential of the next hello: a fresh token, the newest ticket, or the one given. */
  async forHello (): Promise<string | undefined> {
    if (this.source !== undefined) return await this.source()
    return this.resume.ticket ?? this.auth
  }

  /** A socket was welcomed: refresh before its credential expires, if the bridge says when and there is something to refresh with. */
  welcomed (w: WelcomeFrame): void {
    this.refused = false
    this.detach()
    if (typeof w.expiresAt === 'number' && (this.source !== undefined || this.resume.ticket !== undefined)) this.schedule(w.expiresAt)
  }

  /** The socket is gone: no refresh for it, and a result meant for it is ignored. */
  detach (): void {
    this.socketSeq++
    this.inFlight = undefined
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  /** `connect()` was called on a stopped client: a refusal from now on is the first in a row again. */
  restart (): void {
    this.refused = false
  }

  /** After a 4401. A stored ticket that no longer verifies is dropped here, once (see ResumeBook.dropTicket). */
  afterRefusal (): Refusal {
    if (this.source === undefined) return this.resume.dropTicket() ? 'new-visitor' : 'stop'
    if (this.refused) return 'stop'
    this.refused = true
    return 'fresh-token'
  }

  /** Takes the result of the `auth` frame in flight; false for any other result. */
  onResult (frame: ResultFrame): boolean {
    if (this.inFlight === undefined || frame.id !== this.inFlight) return false
    this.inFlight = undefined
    if (!frame.ok) {
      // The socket is kept: the bridge closes it at the expiry, and the 4401 brings a fresh token then.
      this.link.report(BridgeRequestError.fromResult(frame.error))
      return true
    }
    const result = frame.result
    if (!isRecord(result) || typeof result.expiresAt !== 'number') {
      this.link.report(new Error('the bridge sent a malformed result to an auth frame'))
      return true
    }
    if (typeof result.ticket === 'string') this.resume.renewTicket(result.ticket)
    this.schedule(result.expiresAt)
    this.link.refreshed(result.expiresAt)
    return true
  }

  private schedule (expiresAt: number): void {
    const now = this.clock.now()
    const left = expiresAt - now
    this.expiresAt = expiresAt
    this.refreshAt = Math.max(now + Math.max(left * REFRESH_AT_LIFETIME, left - REFRESH_LEAD_MS), this.lastRefresh + MIN_GAP_MS)
    this.arm(now)
  }

  private arm (now: number): void {
    const wait = Math.min(Math.max(0, this.refreshAt - now), MAX_WAIT_MS)
    this.expected = now + wait
    this.timer = this.clock.setTimeout(() => { this.step() }, wait)
  }

  private step (): void {
    this.timer = undefined
    const now = this.clock.now()
    if (now - this.expected > SLEPT_MS && now >= this.expiresAt) {
      // The bridge has closed this socket at the expiry, or will at once; the close may never come through.
      this.link.renew('the credential expired while the machine slept')
      return
    }
    if (now >= this.refreshAt) void this.refresh(now)
    else this.arm(now)
  }

  private async refresh (now: number): Promise<void> {
    this.lastRefresh = now
    const seq = this.socketSeq
    let token: string | undefined
    try {
      token = this.source !== undefined ? await this.source() : this.resume.ticket
    } catch (err) {
      // The bridge's close at the expiry follows, and the next hello asks the function again.
      if (seq === this.socketSeq) this.link.report(err)
      return
    }
    if (seq !== this.socketSeq || token === undefined) return
    this.inFlight = `auth-${++this.lastId}`
    this.link.send(JSON.stringify({ type: 'auth', id: this.inFlight, auth: token }))
  }
}
