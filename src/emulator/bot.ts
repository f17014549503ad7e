/**
 * The demo bot, and its answers as the Chat API writes them. It answers by
 * keyword so that every reply type the bridge must carry shows up in a short
 * manual session: text with markup, buttons, inline buttons, an image, a
 * hand-over to an agent, and a timeout.
 */

/** One element of `data.replies`; every reply carries `state`. */
export interface Reply {
  type: string
  state: string
  [field: string]: unknown
}

export type FollowUp =
  | { kind: 'agent' }
  | { kind: 'timeout', seconds: number, targetState: string }

export interface BotTurn {
  nlpClass: string
  confidence: number
  replies: Reply[]
  /** What the emulator does afterwards on the bot's behalf. */
  followUp?: FollowUp
}

export interface BotInput {
  query?: string
  event?: string
}

const HINT = 'Try: buttons, link, image, agent, timeout (or "timeout 1" for a one-second wait).'

/** A 16x16 square, inline so that showing it fetches nothing from the network. */
const IMAGE_URL = 'data:image/svg+xml;base64,' + Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="#3b82f6"/></svg>'
).toString('base64')

const DEFAULT_TIMEOUT_SECONDS = 3

export function botTurn (input: BotInput): BotTurn {
  if (input.query === undefined) {
    const event = input.event ?? ''
    return keyword('/event', [text(`Got the event "${event}".`, '/event')])
  }
  const query = input.query
  const lower = query.toLowerCase()
  if (/\b(agent|operator)\b/.test(lower)) return handOver(query)
  const timeout = /\btimeout\b(?:\s+(\d+(?:\.\d+)?))?/.exec(lower)
  if (timeout !== null) return waitFor(Number(timeout[1] ?? DEFAULT_TIMEOUT_SECONDS))
  if (/\bbuttons?\b/.test(lower)) {
    return keyword('/buttons', [
      text('Pick one:', '/buttons'),
      { type: 'buttons', buttons: [{ text: 'Yes' }, { text: 'No' }], state: '/buttons' }
    ])
  }
  if (/\blinks?\b/.test(lower)) {
    return keyword('/link', [
      text('Some places to go:', '/link'),
      {
        type: 'inlineButtons',
        buttons: [{ text: 'Example', url: 'https://example.com/' }, { text: 'Docs', url: 'https://example.com/docs' }],
        state: '/link'
      }
    ])
  }
  if (/\b(image|picture)\b/.test(lower)) {
    return keyword('/image', [{ type: 'image', imageUrl: IMAGE_URL, text: 'A small blue square', state: '/image' }])
  }
  return {
    nlpClass: '/CatchAll',
    confidence: -0.011,
    replies: [
      { type: 'text', text: `You said: ${query}`, markup: `You said: <b>${escapeHtml(query)}</b>`, state: '/CatchAll' },
      text(HINT, '/CatchAll')
    ]
  }
}

/** `data.answer`: the text replies joined by a blank line. */
export function answerOf (replies: Reply[]): string {
  return replies.filter((r) => r.type === 'text' && typeof r.text === 'string').map((r) => r.text).join('\n\n')
}

export function text (value: string, state: string): Reply {
  return { type: 'text', text: value, state }
}

/** `data` of a bot answer, as documented. */
export interface ResponseData {
  nlpClass: string
  confidence: number
  replies: Reply[]
  answer: string
  newSessionStarted: boolean
  endSession: boolean
  debugData: unknown[]
}

/** The answer of a sync request, and each element of a webhook payload. */
export interface ChatResponse {
  token: string
  clientId: string
  questionId: string
  cid?: string
  data: ResponseData
  timestamp: string
  blockForm: false
}

export interface ResponseParts {
  token: string
  clientId: string
  questionId: string
  cid?: string | undefined
  /** As the upstream's clock prints it. */
  timestamp: string
  nlpClass: string
  confidence: number
  replies: Reply[]
  newSessionStarted?: boolean
}

/** A bot, agent or campaign message in the documented answer shape. */
export function chatResponse (parts: ResponseParts): ChatResponse {
  const data: ResponseData = {
    nlpClass: parts.nlpClass,
    confidence: parts.confidence,
    replies: parts.replies,
    answer: answerOf(parts.replies),
    newSessionStarted: parts.newSessionStarted ?? false,
    endSession: false,
    debugData: []
  }
  return {
    token: parts.token,
    clientId: parts.clientId,
    questionId: parts.questionId,
    // Echoed when the request carried one; absent otherwise.
    ...(parts.cid === undefined ? {} : { cid: parts.cid }),
    data,
    timestamp: parts.timestamp,
    blockForm: false
  }
}

function keyword (state: string, replies: Reply[]): BotTurn {
  return { nlpClass: state, confidence: 0.9, replies }
}

function handOver (query: string): BotTurn {
  return {
    ...keyword('/agent', [
      text('Connecting you to an agent. Say "bye" to go back to the bot.', '/agent'),
      { type: 'switch', firstMessage: query, closeChatPhrases: ['bye', '/close'], state: '/agent' }
    ]),
    followUp: { kind: 'agent' }
  }
}

function waitFor (seconds: number): BotTurn {
  return {
    ...keyword('/timeout', [
      text(`I will wait ${seconds} s for your next message.`, '/timeout'),
      { type: 'timeout', interval: seconds, targetState: '/timeout/expired', state: '/timeout' }
    ]),
    followUp: { kind: 'timeout', seconds, targetState: '/timeout/expired' }
  }
}

function escapeHtml (value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
