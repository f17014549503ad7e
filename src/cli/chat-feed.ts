import type { BotAnswer, BridgeEvent } from '@chatapi-bridge/client'
import { replyLines, requestText } from './chat-format.js'

/** How many questionIds each set keeps: plenty for a terminal session, and bounded. */
const REMEMBERED = 10_000

/**
 * What the terminal shows of the client's conversation, which every socket
 * of the client receives: each message once, this terminal's own lines not
 * echoed back. A send's result gives its questionId, and that is how its
 * clientRequest and botResponse events are known as this terminal's own;
 * but those events may come before the result, so while a send is in flight
 * they are held, and judged once it settles. No I/O: it returns lines.
 */
export class ChatFeed {
  /** questionIds of this terminal's sends. */
  private readonly own = new Set<string>()
  /** questionIds of answers shown already (by a result, or by an event). */
  private readonly answered = new Set<string>()
  private inFlight = 0
  private held: BridgeEvent[] = []

  /** A send of this terminal goes out. */
  sending (): void {
    this.inFlight++
  }

  /**
   * A send settled: with its answer, or undefined when it failed. Returns the
   * answer's lines, then those of the events held meanwhile.
   */
  sent (answer: BotAnswer | undefined): string[] {
    this.inFlight = Math.max(0, this.inFlight - 1)
    const lines: string[] = []
    if (answer !== undefined) {
      const id = typeof answer.questionId === 'string' ? answer.questionId : undefined
      if (id !== undefined) remember(this.own, id)
      if (this.firstAnswer(id)) lines.push(...replyLines('bot', answer.data?.replies))
    }
    if (this.inFlight === 0) {
      const held = this.held
      this.held = []
      for (const ev of held) lines.push(...this.show(ev))
    }
    return lines
  }

  /** An event the bridge pushed: its lines, none when it is an echo or it must wait for a result. */
  event (ev: BridgeEvent): string[] {
    if (this.inFlight > 0 && (ev.type === 'clientRequest' || ev.type === 'botResponse')) {
      this.held.push(ev)
      return []
    }
    return this.show(ev)
  }

  private show (ev: BridgeEvent): string[] {
    const body = ev.event
    const id = typeof body.questionId === 'string' ? body.questionId : undefined
    const data = isRecord(body.data) ? body.data : undefined
    switch (ev.type) {
      case 'clientRequest':
        return id !== undefined && this.own.has(id) ? [] : [`you (another tab): ${requestText(body)}`]
      case 'botResponse':
        return this.firstAnswer(id) ? replyLines('bot', data?.replies) : []
      case 'agentResponse':
        // The agent's text is on the event itself; `data.replies` may be missing.
        return this.firstAnswer(id) ? replyLines('agent', data?.replies ?? [{ type: 'text', text: String(body.text ?? '') }]) : []
      case 'webhook':
        // An answer the channel's webhook brought: an async answer, an agent, a campaign.
        return this.firstAnswer(id) ? replyLines(data?.nlpClass === '/agent' ? 'agent' : 'bot', data?.replies) : []
      default:
        return [`  event ${ev.type}: ${JSON.stringify(body).slice(0, 200)}`]
    }
  }

  /** Whether the answer of `id` is still to be shown; it counts as shown from now on. No id: always shown. */
  private firstAnswer (id: string | undefined): boolean {
    if (id === undefined) return true
    if (this.answered.has(id)) return false
    remember(this.answered, id)
    return true
  }
}

function remember (set: Set<string>, id: string): void {
  set.add(id)
  // A Set keeps insertion order: the first one is the oldest.
  if (set.size > REMEMBERED) set.delete(set.values().next().value as string)
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
