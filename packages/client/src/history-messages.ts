import type { ChatAuthor, ChatMessage, Reply } from './frames.js'
import { parseTimestamp } from './timestamp.js'

type Fields = Record<string, unknown>

/** Where the list of a history body may be; the Chat API's own shape is not public. */
const LIST_KEYS = ['messages', 'events', 'items', 'history'] as const

/** The platform's message authors (`OPERATOR` is a live agent), in upper case. */
const AUTHORS: Readonly<Record<string, ChatAuthor>> = {
  CLIENT: 'client',
  USER: 'client',
  BOT: 'bot',
  OPERATOR: 'agent',
  AGENT: 'agent',
  SYSTEM: 'system'
}

/**
 * The conversation in a history answer, oldest first, whatever shape the
 * server answered in. It never throws: an element it cannot read is left
 * out, or kept as a `system` message when it has a text.
 *
 * - `{ messages: [{ questionId, timestamp, request, response }] }`, the
 *   emulator's pairs: each gives the client's message, then the answer
 *   (none for a null side). An answer nobody asked for in the `/agent`
 *   state is a live agent's.
 * - `{ events: [{ type, event }] }` or a bare array, as `/events` sends
 *   them: `clientRequest`, `botResponse` and `agentResponse` give messages;
 *   `stateUpdate` and other types without a text are left out.
 * - `{ totalCount, messages: [{ questionId, textMessage, author, status,
 *   eventData, replies, timestamp }] }`, one entry per message, `author`
 *   one of `CLIENT`, `BOT`, `OPERATOR`, `SYSTEM`.
 *
 * Elements are read one by one, so a list that mixes shapes is read too.
 * Times may be ISO-8601 with or without milliseconds and zone (none is
 * UTC), or epoch numbers.
 */
export function historyMessages (body: unknown): ChatMessage[] {
  const chat: ChatMessage[] = []
  for (const element of listOf(body)) chat.push(...messagesOf(element).filter(hasContent))
  return inTimeOrder(chat)
}

function listOf (body: unknown): unknown[] {
  if (Array.isArray(body)) return body
  if (!isRecord(body)) return []
  for (const key of LIST_KEYS) {
    const list = body[key]
    if (Array.isArray(list)) return list
  }
  return []
}

function messagesOf (element: unknown): ChatMessage[] {
  if (!isRecord(element)) return []
  if (typeof element.type === 'string' && isRecord(element.event)) return fromEvent(element.type, element.event, element)
  if ('request' in element || 'response' in element) return fromPair(element)
  if (typeof element.author === 'string' || 'textMessage' in element) return fromEntry(element)
  return typeof element.text === 'string' ? [system(element.text, element, element)] : []
}

/** An element of `/events`. */
function fromEvent (type: string, event: Fields, raw: unknown): ChatMessage[] {
  const base = { ...idOf(event.questionId), ...atOf(event.timestamp), raw }
  switch (type) {
    case 'clientRequest': return [{ ...base, author: 'client', ...request(event) }]
    case 'botResponse': return [{ ...base, author: 'bot', ...answer(event.data) }]
    case 'agentResponse': {
      // The agent's text is on the event itself; `data.replies` may be missing.
      const said = answer(event.data)
      const text = said.text ?? stringOf(event.text)
      return [{ ...base, author: 'agent', ...said, ...(text === undefined ? {} : { text }) }]
    }
    default: return typeof event.text === 'string' ? [system(event.text, event, raw)] : []
  }
}

/** A request and the answer to it, as the emulator keeps them. */
function fromPair (pair: Fields): ChatMessage[] {
  const base = { ...idOf(pair.questionId), ...atOf(pair.timestamp), raw: pair }
  const out: ChatMessage[] = []
  const asked = typeof pair.request === 'string' ? { query: pair.request } : pair.request
  if (isRecord(asked)) out.push({ ...base, author: 'client', ...request(asked) })
  // Some servers may nest the whole response (`{ questionId, data: { replies } }`) rather than its data.
  const response = isRecord(pair.response) && !Array.isArray(pair.response.replies) && isRecord(pair.response.data)
    ? pair.response.data
    : pair.response
  if (isRecord(response)) {
    // No request and the /agent state: how the emulator (and the demo bot) mark a live agent's reply.
    const author: ChatAuthor = !isRecord(asked) && response.nlpClass === '/agent' ? 'agent' : 'bot'
    out.push({ ...base, author, ...answer(response) })
  }
  return out
}

/** One message of the platform's history: who wrote it, and what. */
function fromEntry (entry: Fields): ChatMessage[] {
  const author = typeof entry.author === 'string' ? AUTHORS[entry.author.toUpperCase()] : undefined
  const replies = repliesOf(entry.replies)
  const text = stringOf(entry.textMessage) ?? (replies === undefined ? undefined : textOfReplies(replies))
  const event = author === 'client' && text === undefined ? eventOf(entry.eventData) : undefined
  if (author === undefined && text === undefined) return []
  const message: ChatMessage = { ...idOf(entry.questionId), ...atOf(entry.timestamp), author: author ?? 'system', raw: entry }
  if (text !== undefined) message.text = text
  if (replies !== undefined) message.replies = replies
  if (event !== undefined) message.event = event
  if (typeof entry.status === 'string') message.status = entry.status
  return [message]
}

/** What a client sent: `{ query }`, or `{ event, data }`. */
function request (fields: Fields): Pick<ChatMessage, 'text' | 'event'> {
  const query = stringOf(fields.query)
  if (query !== undefined) return { text: query }
  const name = stringOf(fields.event)
  if (name === undefined) return {}
  return { event: 'data' in fields ? { name, data: fields.data } : { name } }
}

/** The bot's answer data: its replies verbatim, and its text. */
function answer (data: unknown): Pick<ChatMessage, 'text' | 'replies'> {
  if (!isRecord(data)) return {}
  const replies = repliesOf(data.replies)
  const text = stringOf(data.answer) ?? (replies === undefined ? undefined : textOfReplies(replies))
  return { ...(text === undefined ? {} : { text }), ...(replies === undefined ? {} : { replies }) }
}

/** The replies that are replies at all (an object with a `type`); none is undefined. */
function repliesOf (value: unknown): Reply[] | undefined {
  if (!Array.isArray(value)) return undefined
  const replies = value.filter((r): r is Reply => isRecord(r) && typeof r.type === 'string')
  if (replies.length === 0) return undefined
  return replies.length === value.length ? value as Reply[] : replies
}

/** As the Chat API makes `data.answer`: the text replies joined by a blank line. */
function textOfReplies (replies: Reply[]): string | undefined {
  const texts = replies.filter((r) => r.type === 'text' && typeof r.text === 'string' && r.text !== '').map((r) => r.text as string)
  return texts.length === 0 ? undefined : texts.join('\n\n')
}

/** A client entry's `eventData`: its shape is not public, so the name is looked for under the likely keys. */
function eventOf (value: unknown): ChatMessage['event'] {
  if (typeof value === 'string' && value !== '') return { name: value }
  if (!isRecord(value)) return undefined
  const name = stringOf(value.event) ?? stringOf(value.name) ?? stringOf(value.type)
  if (name === undefined) return undefined
  return 'data' in value ? { name, data: value.data } : { name }
}

/** A message with nothing to show (an empty answer, a request with neither query nor event) is no message. */
function hasContent (m: ChatMessage): boolean {
  return m.text !== undefined || m.replies !== undefined || m.event !== undefined
}

function system (text: string, fields: Fields, raw: unknown): ChatMessage {
  return { ...idOf(fields.questionId), ...atOf(fields.timestamp), author: 'system', text, raw }
}

/**
 * Sorted by time, stably, so that a client's message stays before the
 * answer it shares a time with. A message with no time keeps its place
 * after the one before it. A list that runs mostly newest first is turned
 * round first, so that its ties come out in the right order too: whole
 * seconds often give a question and its answer the same time.
 */
function inTimeOrder (chat: ChatMessage[]): ChatMessage[] {
  const list = newestFirst(chat) ? turnedRound(chat) : chat
  let previous = Number.NEGATIVE_INFINITY
  const keyed = list.map((m) => {
    previous = m.at ?? previous
    return { m, t: previous }
  })
  return keyed.sort((a, b) => a.t - b.t).map((k) => k.m)
}

/** Whether more of the steps between dated messages go back in time than forward. */
function newestFirst (chat: ChatMessage[]): boolean {
  let balance = 0
  let previous: number | undefined
  for (const { at } of chat) {
    if (at === undefined) continue
    if (previous !== undefined) balance += Math.sign(previous - at)
    previous = at
  }
  return balance > 0
}

/**
 * Newest first, reversed; the two messages of one pair stay client first.
 */
function turnedRound (chat: ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = []
  for (let i = chat.length - 1; i >= 0; i--) {
    const m = chat[i] as ChatMessage
    const before = chat[i - 1]
    if (before !== undefined && before.raw === m.raw) {
      out.push(before, m)
      i--
    } else {
      out.push(m)
    }
  }
  return out
}

function idOf (value: unknown): { id?: string } {
  return typeof value === 'string' && value !== '' ? { id: value } : {}
}

function atOf (value: unknown): { at?: number } {
  const at = parseTimestamp(value)
  return at === undefined ? {} : { at }
}

function stringOf (value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function isRecord (value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
