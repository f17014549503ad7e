import { eventHash } from '../feed/cursor.js'
import { parseUpstreamTime } from '../upstream/calls.js'
import { parseUpstreamJson } from '../upstream/json.js'
import type { Echoes } from './echoes.js'
import { TokenBucket } from '../lib/token-bucket.js'
import type { MailStore, NewMail } from './mailbox.js'

export interface InboxAnswer { status: number, body: Record<string, unknown> }

export interface InboxOptions {
  mailbox: MailStore
  echoes: Echoes
  /** Channel tokens by channel name, to remove from what the platform echoes. */
  tokens: Map<string, string>
  ratePerS: number
  now?: () => number
  onObjects?: (channel: string, accepted: number, duplicates: number) => void
  /** The objects of one client that were new, once kept: the offline hook's input. */
  onNewMail?: (channel: string, clientId: string, mail: NewMail[]) => void
}

/** Most objects accepted in one delivery. */
const MAX_OBJECTS = 1000
/**
 * Deepest nesting of arrays and objects in a delivery, the array itself
 * included. The platform's objects nest a few levels; a body nested thousands
 * deep parses, but overflows the stack of whatever walks it next.
 */
export const MAX_DEPTH = 64
const CLIENT_ID = /^[A-Za-z0-9._:@~-]{1,128}$/

/**
 * Takes the channel's webhook deliveries: a JSON array of response objects,
 * each for one clientId. Each new object is kept in the client's mailbox and
 * pushed to every socket of that client; a retried delivery, or an answer the
 * /events poll already brought, is not delivered again. A 2xx answer means
 * every object is queued.
 */
export class WebhookInbox {
  private readonly o: InboxOptions
  private readonly buckets = new Map<string, TokenBucket>()
  private readonly now: () => number
  /** Objects taken and skipped since start, and deliveries refused. */
  readonly counts = { accepted: 0, duplicates: 0, refused: 0 }

  constructor (opts: InboxOptions) {
    this.o = opts
    this.now = opts.now ?? Date.now
  }

  async receive (channel: string, text: string): Promise<InboxAnswer> {
    const answer = await this.take(channel, text)
    if (answer.status >= 400) this.counts.refused++
    return answer
  }

  /**
   * A delivery that can never be kept, for its shape, gets a 4xx: the platform
   * retries a 5xx, so only a store that failed (Redis down) answers 503.
   */
  private async take (channel: string, text: string): Promise<InboxAnswer> {
    const token = this.o.tokens.get(channel)
    if (token === undefined) return fail(404, 'not.found', 'no such webhook')
    if (!this.admit(channel)) return fail(429, 'rate.limited', `more than ${this.o.ratePerS} deliveries per second`)
    // Before parsing: the token's removal walks the parsed body, as does every copy made of it later.
    if (nestsDeeper(text, MAX_DEPTH)) return fail(400, 'body.too.deep', `arrays and objects nest at most ${MAX_DEPTH} deep`)
    const body = parseUpstreamJson(text, token)
    if (body === undefined) return fail(400, 'body.not.json', 'the body is not JSON')
    if (!Array.isArray(body)) return fail(400, 'body.not.array', 'the body must be a JSON array of response objects')
    if (body.length > MAX_OBJECTS) return fail(413, 'too.many.objects', `at most ${MAX_OBJECTS} objects per delivery`)
    for (const [i, obj] of body.entries()) {
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return fail(400, 'object.invalid', `element ${i} is not an object`)
      const clientId = (obj as Record<string, unknown>).clientId
      if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId)) return fail(400, 'clientId.missing', `element ${i} has no valid clientId`)
    }
    let byClient: Map<string, NewMail[]>
    try {
      byClient = this.sort(channel, body as Array<Record<string, unknown>>)
    } catch {
      // Parsed but not serialisable again (JSON.stringify threw): retrying will not change that.
      return fail(422, 'body.unserialisable', 'the delivery could not be serialised')
    }
    let accepted = 0
    try {
      for (const [clientId, mail] of byClient) {
        const kept = await this.o.mailbox.add(channel, clientId, mail)
        accepted += kept.length
        if (kept.length > 0) this.o.onNewMail?.(channel, clientId, kept)
      }
    } catch {
      // The store could not keep them (Redis down): the platform retries a failed delivery.
      return fail(503, 'store.unavailable', 'the delivery could not be kept; try again')
    }
    const duplicates = body.length - accepted
    this.counts.accepted += accepted
    this.counts.duplicates += duplicates
    this.o.onObjects?.(channel, accepted, duplicates)
    return { status: 200, body: { accepted, duplicates } }
  }

  /** The new objects of a delivery as mail, by client; an answer this client already has (from the poll, or an earlier delivery) is left out. */
  private sort (channel: string, body: Array<Record<string, unknown>>): Map<string, NewMail[]> {
    const byClient = new Map<string, NewMail[]>()
    for (const obj of body) {
      const clientId = obj.clientId as string
      const json = JSON.stringify(obj)
      const questionId = typeof obj.questionId === 'string' ? obj.questionId : undefined
      if (questionId !== undefined && this.seen(channel, clientId, questionId)) continue
      const list = byClient.get(clientId) ?? []
      list.push({ ts: parseUpstreamTime(obj.timestamp) ?? this.now(), hash: eventHash(json), json: `{"type":"webhook","event":${json}}`, questionId })
      byClient.set(clientId, list)
    }
    return byClient
  }

  private seen (channel: string, clientId: string, questionId: string): boolean {
    return this.o.echoes.seenByPoll(channel, clientId, questionId) || this.o.echoes.seenByWebhook(channel, clientId, questionId)
  }

  /** A token bucket per channel: a flood of deliveries gets 429s and the rest of the bridge goes on. */
  private admit (channel: string): boolean {
    const now = this.now()
    let b = this.buckets.get(channel)
    if (b === undefined) {
      b = new TokenBucket(this.o.ratePerS, Math.max(1, this.o.ratePerS * 2), now)
      this.buckets.set(channel, b)
    }
    return b.take(now)
  }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

/**
 * Whether JSON text nests arrays and objects deeper than `limit`. A linear
 * scan that skips strings (and the characters escaped in them), so that it
 * cannot overflow the stack whatever the text; malformed text is left to
 * the parser.
 */
export function nestsDeeper (text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return false
}

function fail (status: number, error: string, message: string): InboxAnswer {
  return { status, body: { error, message } }
}
