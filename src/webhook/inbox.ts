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
}

/** Most objects accepted in one delivery. */
const MAX_OBJECTS = 1000
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
    let answer: InboxAnswer
    try {
      answer = await this.take(channel, text)
    } catch {
      // The store could not keep them (Redis down): the platform retries a failed delivery.
      answer = fail(503, 'store.unavailable', 'the delivery could not be kept; try again')
    }
    if (answer.status >= 400) this.counts.refused++
    return answer
  }

  private async take (channel: string, text: string): Promise<InboxAnswer> {
    const token = this.o.tokens.get(channel)
    if (token === undefined) return fail(404, 'not.found', 'no such webhook')
    if (!this.admit(channel)) return fail(429, 'rate.limited', `more than ${this.o.ratePerS} deliveries per second`)
    const body = parseUpstreamJson(text, token)
    if (body === undefined) return fail(400, 'body.not.json', 'the body is not JSON')
    if (!Array.isArray(body)) return fail(400, 'body.not.array', 'the body must be a JSON array of response objects')
    if (body.length > MAX_OBJECTS) return fail(413, 'too.many.objects', `at most ${MAX_OBJECTS} objects per delivery`)
    for (const [i, obj] of body.entries()) {
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return fail(400, 'object.invalid', `element ${i} is not an object`)
      const clientId = (obj as Record<string, unknown>).clientId
      if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId)) return fail(400, 'clientId.missing', `element ${i} has no valid clientId`)
    }
    const byClient = new Map<string, NewMail[]>()
    for (const obj of body as Array<Record<string, unknown>>) {
      const clientId = obj.clientId as string
      const json = JSON.stringify(obj)
      const questionId = typeof obj.questionId === 'string' ? obj.questionId : undefined
      // An answer this client already has (from the poll, or an earlier delivery) is a duplicate.
      if (questionId !== undefined && this.seen(channel, clientId, questionId)) continue
      const list = byClient.get(clientId) ?? []
      list.push({ ts: parseUpstreamTime(obj.timestamp) ?? this.now(), hash: eventHash(json), json: `{"type":"webhook","event":${json}}`, questionId })
      byClient.set(clientId, list)
    }
    let accepted = 0
    for (const [clientId, mail] of byClient) {
      accepted += await this.o.mailbox.add(channel, clientId, mail)
    }
    const duplicates = body.length - accepted
    this.counts.accepted += accepted
    this.counts.duplicates += duplicates
    this.o.onObjects?.(channel, accepted, duplicates)
    return { status: 200, body: { accepted, duplicates } }
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

function fail (status: number, error: string, message: string): InboxAnswer {
  return { status, body: { error, message } }
}
