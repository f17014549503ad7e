import { setTimeout as wait } from 'node:timers/promises'
import { backoffDelay, type Backoff } from '@chatapi-bridge/client'
import { clientKey } from '../lib/client-key.js'
import type { Log } from '../lib/log.js'
import { TtlCache } from '../lib/ttl-cache.js'
import type { PostOutcome } from './hook-sender.js'
import type { NewMail } from './mailbox.js'
import type { Presence } from './presence.js'

export type HookResult = 'posted' | 'failed' | 'dropped' | 'duplicate'

export interface OfflineHookOptions {
  /** One attempt at posting a body (HookSender). */
  post: (body: string, signal: AbortSignal) => Promise<PostOutcome>
  presence: Presence
  /** Delays between attempts: full jitter under a doubling ceiling, as the upstream's retries (BACKOFF_BASE_MS, BACKOFF_MAX_MS). */
  backoff: Backoff
  /** How long an event's id is remembered, so that it is posted at most once (the webhook's retention). */
  dedupMs: number
  log: Log
  onResult?: (result: HookResult) => void
  now?: () => number
}

/** Attempts per event: with the default backoff, the last within about 8 s, or a minute with Retry-After at its cap. */
export const ATTEMPTS = 5
/** Events waiting for a post on this instance at most; past it the oldest goes. */
export const QUEUE_MAX = 1000
/** Posts in flight at once: a slow hook holds up this many and the queue, never the webhook. */
const CONCURRENCY = 4
/** Largest body posted: a push needs a few bytes of the event (APNs takes 4 KB in all), and a hook should not take a megabyte per message. */
export const MAX_BODY_BYTES = 65_536
/** Ids remembered at most. */
const DEDUP_MAX = 100_000

interface Job { channel: string, clientId: string, id: string, body: string }

/**
 * Posts the webhook events of clients who are away to the operator's hook,
 * so that their backend can send a push: each event at most once (by its
 * id, the hash the mailbox already keeps it under), from a bounded queue,
 * retried with backoff on network errors, 5xx and 429, then given up with
 * one warning. The instance that took a delivery is the one that offers it,
 * so in a cluster too one instance posts each event.
 */
export class OfflineHook {
  private readonly o: OfflineHookOptions
  private readonly queue: Job[] = []
  private readonly seen: TtlCache<true>
  private readonly ended = new AbortController()
  private readonly now: () => number
  private active = 0
  private drops = 0

  constructor (o: OfflineHookOptions) {
    this.o = o
    this.now = o.now ?? Date.now
    this.seen = new TtlCache(o.dedupMs, DEDUP_MAX, this.now)
  }

  /**
   * New mail of one client, just kept: posted if the client has no socket
   * now. Never throws and never holds up the webhook's answer.
   */
  offer (channel: string, clientId: string, mail: NewMail[]): void {
    const at = this.now()
    // A presence that cannot be known (Redis failing) counts as away: a push too many beats a message never told.
    void this.o.presence.away(channel, clientId).catch(() => true).then((away) => {
      if (away) for (const m of mail) this.enqueue(channel, clientId, m, at)
    })
  }

  /** Stops posting: what is queued or being retried is dropped. */
  close (): void {
    this.ended.abort()
    this.queue.length = 0
  }

  private enqueue (channel: string, clientId: string, m: NewMail, at: number): void {
    if (this.ended.signal.aborted) return
    const key = clientKey(channel, m.hash)
    if (this.seen.get(key) === true) {
      this.o.onResult?.('duplicate')
      return
    }
    this.seen.set(key, true)
    const event = (JSON.parse(m.json) as { event: unknown }).event
    const body = JSON.stringify({ channel, clientId, event, id: m.hash, at })
    if (Buffer.byteLength(body) > MAX_BODY_BYTES) {
      this.drop({ channel, clientId, id: m.hash, why: `larger than ${MAX_BODY_BYTES} bytes` })
      return
    }
    if (this.queue.length >= QUEUE_MAX) {
      const oldest = this.queue.shift() as Job
      this.drop({ channel: oldest.channel, clientId: oldest.clientId, id: oldest.id, why: 'queue full' })
    }
    this.queue.push({ channel, clientId, id: m.hash, body })
    this.pump()
  }

  private pump (): void {
    while (this.active < CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift() as Job
      this.active++
      void this.run(job).finally(() => {
        this.active--
        this.pump()
      })
    }
  }

  private async run (job: Job): Promise<void> {
    const signal = this.ended.signal
    for (let attempt = 1; ; attempt++) {
      const out = await this.o.post(job.body, signal)
      if (signal.aborted) return
      if (out.kind === 'posted') {
        this.o.onResult?.('posted')
        return
      }
      if (out.kind === 'refused' || attempt >= ATTEMPTS) {
        this.o.onResult?.('failed')
        this.o.log.warn({ channel: job.channel, clientId: job.clientId, id: job.id, attempts: attempt, why: out.why }, 'offline hook: event not posted, given up')
        return
      }
      // The hook's Retry-After is honoured up to the backoff's cap: a hook cannot park an event for an hour.
      const delay = Math.min(this.o.backoff.maxMs, Math.max(backoffDelay(attempt - 1, this.o.backoff), out.retryAfterMs ?? 0))
      try {
        await wait(delay, undefined, { signal, ref: false })
      } catch {
        return
      }
    }
  }

  /** Logged at the first drop and then at powers of two: a flood of events for a dead hook must not flood the log too. */
  private drop (job: { channel: string, clientId: string, id: string, why: string }): void {
    this.o.onResult?.('dropped')
    this.drops++
    if ((this.drops & (this.drops - 1)) === 0) this.o.log.warn({ ...job, dropped: this.drops }, 'offline hook: event dropped')
  }
}
