import type { FeedEvent } from '../feed/event.js'
import { clientKey } from '../lib/client-key.js'

/** One webhook object kept for a client: its place in the mailbox and its frame body. */
export interface MailboxEntry extends FeedEvent {
  /** Increasing per process: arrival time in ms × 1000 + a counter, so it survives no restart and needs none. */
  pos: number
  questionId: string | undefined
}

/** A webhook object before it has a place in a mailbox. */
export type NewMail = Omit<MailboxEntry, 'pos'>

export type MailListener = (channel: string, clientId: string, entries: MailboxEntry[]) => void

/**
 * Where webhook objects are kept and how they reach the sockets: in this
 * process (Mailbox), or in Redis for a cluster, where every instance hears of
 * each new object and delivers it to its own sockets of that client.
 */
export interface MailStore {
  /** The current position: what a new connection has "already seen". */
  mark: () => number
  /**
   * Keeps new objects of one client, skipping those kept before (a retried
   * delivery), and has them delivered to the client's sockets. Resolves with
   * those that were new once they are safely kept.
   */
  add: (channel: string, clientId: string, mail: NewMail[]) => Promise<NewMail[]>
  /** The entries after `pos`, or null when some entry after `pos` may have been dropped. */
  after: (channel: string, clientId: string, pos: number) => Promise<MailboxEntry[] | null>
  onMail: (listener: MailListener) => void
  /** A client has a feed here, or no longer: a shared store tells this instance of that client's new mail. */
  watch?: (channel: string, clientId: string) => void
  unwatch?: (channel: string, clientId: string) => void
}

interface Box { entries: MailboxEntry[], trimmedUpTo: number }

/**
 * The webhook deliveries of each client, kept for a while so that a client
 * that was away gets them on resume. The upstream's /events log cannot give
 * them back: only the bridge saw them. Positions start at this process's
 * start, so a cursor from before a restart is known to be uncovered.
 */
export class Mailbox implements MailStore {
  private readonly boxes = new Map<string, Box>()
  private listener: MailListener | undefined
  private readonly retentionMs: number
  private readonly perClient: number
  private readonly now: () => number
  private last = 0
  /** Positions below this were never in this process's mailbox. */
  readonly coverageStart: number

  constructor (retentionMs: number, perClient: number, now: () => number = Date.now) {
    this.retentionMs = retentionMs
    this.perClient = perClient
    this.now = now
    this.coverageStart = now() * 1000
  }

  /** The current position: what a new connection has "already seen". */
  mark (): number {
    return Math.max(this.last, this.coverageStart)
  }

  onMail (listener: MailListener): void { this.listener = listener }

  async add (channel: string, clientId: string, mail: NewMail[]): Promise<NewMail[]> {
    const kept: MailboxEntry[] = []
    for (const m of mail) {
      if (this.has(channel, clientId, m.hash) || kept.some((k) => k.hash === m.hash)) continue
      const entry = { ...m, pos: this.nextPos() }
      this.keep(channel, clientId, entry)
      kept.push(entry)
    }
    if (kept.length > 0) this.listener?.(channel, clientId, kept)
    return kept
  }

  private nextPos (): number {
    this.last = Math.max(this.last + 1, this.now() * 1000)
    return this.last
  }

  private keep (channel: string, clientId: string, entry: MailboxEntry): void {
    const k = clientKey(channel, clientId)
    let box = this.boxes.get(k)
    if (box === undefined) {
      box = { entries: [], trimmedUpTo: 0 }
      this.boxes.set(k, box)
    }
    box.entries.push(entry)
    this.trim(box)
  }

  private has (channel: string, clientId: string, hash: string): boolean {
    return this.boxes.get(clientKey(channel, clientId))?.entries.some((e) => e.hash === hash) ?? false
  }

  /**
   * The entries after `pos`, or null when some entry after `pos` may have been
   * dropped (older than this process or than the retention).
   */
  async after (channel: string, clientId: string, pos: number): Promise<MailboxEntry[] | null> {
    const box = this.boxes.get(clientKey(channel, clientId))
    if (box !== undefined) this.trim(box)
    const floor = Math.max(this.coverageStart, (this.now() - this.retentionMs) * 1000, box?.trimmedUpTo ?? 0)
    // A webhook cursor from before what is kept: something after it may be gone.
    if (pos > 0 && pos < floor) return null
    return box === undefined ? [] : box.entries.filter((e) => e.pos > pos)
  }

  /** Drops what is older than the retention; called on each add and read, and by a sweep. */
  sweep (): void {
    for (const [k, box] of this.boxes) {
      this.trim(box)
      if (box.entries.length === 0) this.boxes.delete(k)
    }
  }

  private trim (box: Box): void {
    const oldest = (this.now() - this.retentionMs) * 1000
    while (box.entries.length > 0 && ((box.entries[0] as MailboxEntry).pos < oldest || box.entries.length > this.perClient)) {
      box.trimmedUpTo = (box.entries.shift() as MailboxEntry).pos
    }
  }
}
