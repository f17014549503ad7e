import type { WelcomeFrame } from './frames.js'
import type { ClientStore } from './storage.js'

/**
 * What a client needs to come back as itself and where it left off: the
 * newest ticket, the connection id, and the cursor of the last event
 * processed (or, before any event, the start the welcome gave). Every change
 * is written through to the store, so that a reload resumes too.
 */
export class ResumeBook {
  private readonly store: ClientStore
  private ticketValue: string | undefined
  private cidValue: string | undefined
  private cursor: string | undefined
  /** Whether the hello of the current socket carried a cursor. */
  private resumeSent = false
  /** Whether the hello of the current socket carried the stored ticket. */
  private ticketSent = false

  /** `ticketMode`: no credential was given, so the stored ticket is the credential. */
  constructor (store: ClientStore, cid: string | undefined, ticketMode: boolean) {
    this.store = store
    if (ticketMode) this.ticketValue = store.ticket
    this.cidValue = cid
    if (cid !== undefined) this.cursor = store.cursor(cid)
  }

  get ticket (): string | undefined { return this.ticketValue }
  get cid (): string | undefined { return this.cidValue }

  /** A new socket starts: its hello resumes if there is a cursor now. */
  startSocket (): void {
    this.resumeSent = this.cursor !== undefined
    this.ticketSent = this.ticketValue !== undefined
  }

  /** The hello's fields other than the credential and `all`. */
  hello (): { cid?: string, resume?: string } {
    const fields: { cid?: string, resume?: string } = {}
    if (this.cidValue !== undefined) fields.cid = this.cidValue
    if (this.cursor !== undefined) fields.resume = this.cursor
    return fields
  }

  /**
   * Takes in a welcome and returns the gap to report, if any: the bridge's,
   * or one made up here when a reconnect had no cursor to offer.
   * `reconnected`: a socket of this client was welcomed before.
   */
  welcome (w: WelcomeFrame, reconnected: boolean): { reason: string } | undefined {
    if (typeof w.ticket === 'string') this.renewTicket(w.ticket)
    this.cidValue = w.cid
    // A welcome that did not resume says where this socket's stream starts: resume from there if no event comes.
    if (!w.resumed) this.setCursor(typeof w.cursor === 'string' ? w.cursor : undefined)
    if (w.gap === undefined && !w.resumed && reconnected && !this.resumeSent) {
      return { reason: 'no event had come before the connection dropped, so there was no cursor to resume from' }
    }
    return w.gap
  }

  /** A newer ticket, of a welcome or of a refresh on the open socket: the one to present from now on. */
  renewTicket (ticket: string): void {
    this.ticketValue = ticket
    this.store.ticket = ticket
  }

  /** An event was processed: resume after it. */
  passed (cursor: string): void {
    this.setCursor(cursor)
  }

  /**
   * A refused ticket is useless from now on, and so is the cursor of its
   * client: the next hello starts as a new visitor. Whether the socket that
   * was refused presented a ticket, that is, whether there was one to drop.
   */
  dropTicket (): boolean {
    if (this.ticketValue === undefined || !this.ticketSent) return false
    this.ticketValue = undefined
    this.store.ticket = undefined
    this.setCursor(undefined)
    return true
  }

  private setCursor (cursor: string | undefined): void {
    this.cursor = cursor
    if (this.cidValue !== undefined) this.store.setCursor(this.cidValue, cursor)
  }
}
