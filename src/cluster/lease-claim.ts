import type { CursorPosition } from '../feed/cursor.js'
import { positionOf } from '../feed/event.js'
import { fenceOf, instanceOf, type Bid } from './feed-stream.js'
import type { FeedKeys } from './keys.js'
import { Lease, type LeaseContext, type LeaseHolder } from './lease.js'

/** A period shortened by up to a quarter at random, so that claims started together do not keep renewing together. */
function jitter (ms: number): number {
  return ms * (0.75 + Math.random() * 0.25)
}

/** What the claims of one instance share. */
export interface ClaimContext extends LeaseContext {
  /** This claim took the lease (`true`) or gave it up (`false`). */
  onOwner: (owns: boolean) => void
  /** Gives a lease up in the background (stop() cannot wait), until Redis takes the release. */
  release: (keys: FeedKeys, token: string) => void
  /** Resolves once this instance's alive key is in Redis: a lease taken before would look dead to the others. */
  alive: Promise<void>
  /** How often an owner keeps the feed's keys from expiring (a third of the stream's lifetime, at least a tick). */
  keepMs: number
  /** How often a claim without the lease asks who holds it, in case an announcement was lost. */
  recheckMs: number
  /** Whether an instance's alive key is gone. */
  isDead: (instance: string) => Promise<boolean>
}

/** What the instance found at one tick, for every claim. */
export interface ClaimTick {
  now: number
  /** This instance's alive key had lapsed: another instance may have bid for any of its leases. */
  lapsed: boolean
  /** Instances, among those holders waited on, whose alive key is gone. */
  dead: ReadonlySet<string>
}

/** Where a new owner's poll starts when the stream is empty, and what it must not repeat. */
export interface ClaimStart {
  start: CursorPosition
  before: CursorPosition[] | undefined
}

/**
 * This instance's claim on one feed's lease: it holds the lease (a Lease,
 * which polls and appends) or knows who does. An owner's lease lasts while
 * its instance's alive key does (see Liveness), so a claim sends nothing
 * each tick: an owner keeps the feed's keys from expiring once in a long
 * while, and a waiter bids only when the holder's instance is dead, the
 * lease was released, or once in a while to check what it knows.
 *
 * Safety rests on the lease key alone, which names the holder's token: a
 * bid is a compare-and-set on it, and every append checks it. An owner
 * whose alive key lapsed takes its lease again under a new fencing number
 * before it trusts it: a bid made on the old number then fails, and if the
 * bid came first, the owner learns that its lease is gone.
 */
export class LeaseClaim {
  private readonly c: ClaimContext
  private readonly keys: FeedKeys
  private readonly source: LeaseHolder
  private readonly from: ClaimStart
  private lease: Lease | undefined
  /** The holder's token as last learnt, while this claim has not the lease. */
  private holder: string | undefined
  /** A lease step (bid, keep, take back) is under way: one at a time. */
  private busy = false
  /** This instance's alive key lapsed since the lease was last taken: it must be taken again under a new number. */
  private suspect = false
  private nextKeep = 0
  private nextCheck = 0
  private stopped = false

  constructor (c: ClaimContext, keys: FeedKeys, source: LeaseHolder, from: ClaimStart) {
    this.c = c
    this.keys = keys
    this.source = source
    this.from = from
  }

  get owns (): boolean { return this.lease !== undefined }
  get held (): number { return this.lease?.heldCount ?? 0 }

  /** The instance whose alive key this claim waits on: the holder of the lease, when another instance. */
  get waitsOn (): string | undefined {
    if (this.lease !== undefined || this.holder === undefined) return undefined
    const i = instanceOf(this.holder)
    return i === this.c.instance ? undefined : i
  }

  async tick (t: ClaimTick): Promise<void> {
    const lease = this.lease
    if (lease !== undefined) {
      if (t.lapsed) this.suspect = true
      if (this.suspect || lease.fenced || t.now >= this.nextKeep) await this.step(async () => { await this.keep(lease) })
      return
    }
    const holder = this.holder
    // A lease of this instance that this claim does not hold was left by a claim of the same feed that stopped.
    if (holder === undefined || t.dead.has(instanceOf(holder)) || instanceOf(holder) === this.c.instance) await this.bid(holder)
    else if (t.now >= this.nextCheck) await this.step(async () => { await this.check() })
  }

  /**
   * The first bid. A lease held by another instance may have been left by
   * one that died long ago (the lease key lasts as long as the stream): ask
   * about that instance now rather than at the next tick.
   */
  async start (): Promise<void> {
    await this.bid()
    const holder = this.holder
    const waitsOn = this.waitsOn
    if (holder === undefined || waitsOn === undefined) return
    await this.step(async () => {
      if (this.holder === holder && await this.c.isDead(waitsOn)) await this.acquire(holder)
    })
  }

  /** Bids for the lease: won if nobody holds it, or if it still is `stale`'s. */
  async bid (stale?: string): Promise<void> {
    await this.step(async () => { await this.acquire(stale) })
  }

  /** The lease was released: nobody holds it now. */
  released (): void {
    this.holder = undefined
    void this.bid()
  }

  /** The notify channel says `token` took the lease. */
  heard (token: string): void {
    // This instance's own tokens are known to it: its announcement may arrive before the script's answer.
    if (instanceOf(token) === this.c.instance) return
    const lease = this.lease
    if (lease !== undefined) {
      void this.step(async () => { await this.keep(lease) })
      return
    }
    if (this.holder === undefined || fenceOf(token) >= fenceOf(this.holder)) this.holder = token
  }

  stop (): void {
    this.stopped = true
    const lease = this.lease
    if (lease === undefined) return
    this.disown(lease)
    this.c.release(this.keys, lease.token)
  }

  private async step (fn: () => Promise<void>): Promise<void> {
    if (this.busy || this.stopped) return
    this.busy = true
    try {
      await fn()
    } catch (err) {
      this.c.health.failed(err)
    } finally {
      this.busy = false
    }
  }

  /** Asks who holds the lease, and bids if nobody does. */
  private async check (): Promise<void> {
    const holder = await this.c.streams.holder(this.keys)
    this.c.health.ok()
    this.nextCheck = Date.now() + jitter(this.c.recheckMs)
    this.holder = holder
    if (holder === undefined) await this.acquire()
  }

  private async acquire (stale?: string): Promise<void> {
    if (this.lease !== undefined) return
    await this.c.alive
    if (this.stopped) return
    const got = await this.c.streams.acquire(this.keys, this.c.instance, stale)
    this.c.health.ok()
    this.nextCheck = Date.now() + jitter(this.c.recheckMs)
    if (!got.won) {
      this.holder = got.holder
      return
    }
    if (this.stopped) {
      this.c.release(this.keys, got.token)
      return
    }
    this.own(got.token, got.last === undefined ? this.source.last ?? this.from.start : positionOf(got.last))
  }

  /** Keeps the lease: takes it again under a new number if this instance's alive key lapsed or Redis lost it. */
  private async keep (lease: Lease): Promise<void> {
    if (!this.suspect) {
      const state = await lease.renew()
      if (this.lease !== lease) return
      if (state === 'renewed') {
        this.nextKeep = Date.now() + jitter(this.c.keepMs)
        return
      }
      if (state === 'taken') {
        this.disown(lease)
        return
      }
    }
    const got = await this.c.streams.acquire(this.keys, this.c.instance, lease.token)
    this.c.health.ok()
    this.retake(lease, got)
  }

  private retake (lease: Lease, got: Bid): void {
    if (this.lease !== lease) {
      if (got.won) this.c.release(this.keys, got.token)
      return
    }
    if (!got.won) {
      this.holder = got.holder
      this.disown(lease)
      return
    }
    this.suspect = false
    this.nextKeep = Date.now() + jitter(this.c.keepMs)
    if (got.replaced || lease.follows(got.last)) {
      void lease.retoken(got.token).catch((err: unknown) => { this.c.health.failed(err) })
      return
    }
    // Redis lost the lease and another owner wrote meanwhile: start over from the stream.
    this.disown(lease)
    this.own(got.token, positionOf(got.last as NonNullable<typeof got.last>))
  }

  /** Polls for the cluster from `start`: after the stream's last event, or from a time. */
  private own (token: string, start: CursorPosition): void {
    const lease = new Lease(this.c, this.keys, this.source, token, start, this.from.before)
    this.lease = lease
    this.holder = undefined
    this.suspect = false
    this.nextKeep = Date.now() + jitter(this.c.keepMs)
    this.c.onOwner(true)
    lease.start()
  }

  private disown (lease: Lease): void {
    lease.end()
    if (this.lease !== lease) return
    this.lease = undefined
    this.nextCheck = 0
    this.c.onOwner(false)
  }
}
