/**
 * The frames of protocol v1 that the bridge sends, and the shapes of the
 * Chat API bodies that results carry. This is the one definition of the
 * server's frames: the server's socket/protocol.ts takes them from here
 * (and keeps the schemas of the frames it receives, which it validates).
 * Plain types, so that the client runs in a browser with no dependency.
 */

/** The WebSocket subprotocol of protocol v1. */
export const SUBPROTOCOL = 'chatapi-bridge.v1'

export interface WelcomeFrame {
  type: 'welcome'
  clientId: string
  cid: string
  /** In ticket mode: the credential to present next time. */
  ticket?: string
  resumed: boolean
  /** When a `resume` was given and `resumed` is false: why not. */
  gap?: { reason: string }
  heartbeatMs: number
  /** The channel the socket is on: the `?channel=` asked for, or the bridge's default. */
  channel: string
  /** When the socket did not resume: the position its stream starts from, a cursor like an event's. */
  cursor?: string
  /**
   * Epoch ms at which the socket's credential expires (a JWT's `exp`, or that
   * of the ticket in this welcome): the bridge closes the socket with 4401
   * then, unless an `auth` frame brought a fresh one. Absent from bridges
   * that predate it.
   */
  expiresAt?: number
}

/** The result of an `auth` frame the bridge accepted: the socket's new expiry, and in ticket mode the ticket to keep. */
export interface AuthResult {
  expiresAt: number
  ticket?: string
}

/** An upstream element as the client hands it out: its `type`, and its `event`, or an empty object where it had none. */
export interface UpstreamEvent {
  type: string
  event: Record<string, unknown>
}

/**
 * What an event frame carries: an element of the upstream `/events` answer as
 * it came, less the channel token, or `{ type: 'webhook', event }` for what
 * the channel's webhook received. The bridge passes it on unchecked: `type`
 * is a string by the Chat API's contract (the client reports a frame whose
 * type is not), and `event` is an object on the servers seen so far, but
 * some leave it null and put the time on the element itself.
 */
export interface UpstreamElement {
  type: string
  event?: unknown
  [k: string]: unknown
}

export interface EventFrame { type: 'event', cursor: string, event: UpstreamElement }

export interface ResultError {
  code: string
  message: string
  /** The upstream's HTTP status, for UPSTREAM_REJECTED. */
  status?: number
  /** The upstream's own error body, for UPSTREAM_REJECTED. */
  upstreamError?: unknown
  /** After the upstream's 429: its Retry-After, in milliseconds. */
  retryAfterMs?: number
  [k: string]: unknown
}

export type ResultFrame =
  | { type: 'result', id: string, ok: true, result: unknown }
  | { type: 'result', id: string, ok: false, error: ResultError }

/**
 * The answer to a frame that is no request at all. The bridge answers a bad
 * frame that has a usable `id` with a failed `result` instead, so it sends no
 * `id` here; the client still fails the request an `id` would name.
 */
export interface ErrorFrame { type: 'error', code: string, message: string, id?: string }

/** The heartbeat's data frame (`ping`), and the answer to a client's `ping` (`pong`). */
export interface HeartbeatFrame { type: 'ping' | 'pong' }

/** Every frame the bridge sends in protocol v1. A later version may add types: treat an unknown one as a sign of life. */
export type ServerFrame = WelcomeFrame | EventFrame | ResultFrame | ErrorFrame | HeartbeatFrame

/** An event as the client hands it out: the upstream element and the cursor that follows it. */
export interface BridgeEvent extends UpstreamEvent {
  cursor: string
}

/** What to send: a text, or a named event, either with optional data. */
export type Message =
  | string
  | { query: string, data?: unknown }
  | { event: string, data?: unknown }

/** One element of `data.replies`: `text`, `buttons`, `inlineButtons`, `image`, `switch`, `timeout`, … */
export interface Reply {
  type: string
  text?: string
  markup?: string
  buttons?: Array<{ text?: string, url?: string, [k: string]: unknown }>
  imageUrl?: string
  [k: string]: unknown
}

/** The bot's answer to `send`: the Chat API's body, less the channel token. */
export interface BotAnswer {
  clientId?: string
  questionId: string
  cid?: string
  data: { replies: Reply[], answer?: string, [k: string]: unknown }
  timestamp: string
  [k: string]: unknown
}

export interface HistoryOptions {
  /** Epoch ms, inclusive. */
  from?: number
  /** Epoch ms, inclusive. */
  to?: number
  /** 1 to 1000. */
  limit?: number
}

/**
 * One element of the history as the emulator answers it: a request and the
 * answer to it. A live Chat API's history shape is not public, so read the
 * history through `ChatMessage`, which `historyMessages` makes from any shape.
 */
export interface HistoryMessage {
  questionId: string
  timestamp: string
  /** What the client sent; null for messages nobody asked for (an agent's reply). */
  request: { query?: string, event?: string, data?: unknown, cid?: string } | null
  response: { replies?: Reply[], [k: string]: unknown } | null
  [k: string]: unknown
}

/** Who wrote a message. The platform's `OPERATOR`, a live agent, is `agent` here. */
export type ChatAuthor = 'client' | 'bot' | 'agent' | 'system'

/** One message of the conversation, the same whatever shape the server's history came in. */
export interface ChatMessage {
  /** The upstream questionId. A client's message and the bot's answer to it share one. */
  id?: string
  /** Epoch ms on the upstream's clock (a zone-less upstream time is read as UTC). */
  at?: number
  author: ChatAuthor
  /** What the client typed; the answer's text (`answer`, or its text replies); an entry's `textMessage`. */
  text?: string
  /** The bot's or the agent's replies, verbatim, to render as their `type` says. */
  replies?: Reply[]
  /** A client's named event, sent instead of a text. */
  event?: { name: string, data?: unknown }
  /** The message's status, where the server gives it with the message (`SENT`, `READ`, …). */
  status?: string
  /** The element of the upstream answer it was read from. A request and its answer in one element make two messages with the same `raw`. */
  raw: unknown
}

/** What `BridgeClient.history()` resolves with. */
export interface HistoryResult {
  /** The conversation, oldest first, whatever shape the server answered in. */
  chat: ChatMessage[]
  /**
   * The body's `messages` array as sent, or empty when the body has none.
   * Shaped as `HistoryMessage` only on a server that answers as the
   * emulator does.
   * @deprecated Read `chat`, which every server shape fills.
   */
  messages: HistoryMessage[]
  /** The upstream's answer verbatim, less the channel token. */
  body: unknown
}

export interface MessageStatus { questionId: string, status: string }
