import { TtlCache } from '../lib/ttl-cache.js'
import { clientKey } from '../lib/client-key.js'

/**
 * The same answer can reach the bridge twice: through the channel's webhook
 * and through the /events poll (an agent's reply, say). Each source notes the
 * questionIds it delivered per client, and the other skips them, so a socket
 * shows each answer once.
 */
export class Echoes {
  private readonly byWebhook: TtlCache<true>
  private readonly byPoll: TtlCache<true>

  constructor (ttlMs: number, max = 200_000) {
    this.byWebhook = new TtlCache(ttlMs, max)
    this.byPoll = new TtlCache(ttlMs, max)
  }

  webhookDelivered (channel: string, clientId: string, questionId: string): void {
    this.byWebhook.set(clientKey(channel, clientId, questionId), true)
  }

  pollDelivered (channel: string, clientId: string, questionId: string): void {
    this.byPoll.set(clientKey(channel, clientId, questionId), true)
  }

  seenByWebhook (channel: string, clientId: string, questionId: string): boolean {
    return this.byWebhook.get(clientKey(channel, clientId, questionId)) === true
  }

  seenByPoll (channel: string, clientId: string, questionId: string): boolean {
    return this.byPoll.get(clientKey(channel, clientId, questionId)) === true
  }
}

/** Upstream /events types that carry an answer which the webhook may bring as well. */
const ANSWERS = new Set(['botResponse', 'agentResponse'])

/** The questionId of an /events element that is an answer, or undefined. */
export function answerId (element: Record<string, unknown>): string | undefined {
  if (typeof element.type !== 'string' || !ANSWERS.has(element.type)) return undefined
  const inner = element.event as Record<string, unknown> | undefined
  return typeof inner?.questionId === 'string' ? inner.questionId : undefined
}
