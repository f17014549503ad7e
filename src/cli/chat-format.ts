import type { ChatAuthor, ChatMessage, Reply, StateChange } from '@chatapi-bridge/client'

/**
 * How the terminal chat writes things: replies, the history, connection
 * changes. Pure functions that return lines, so that they are tested
 * without a terminal.
 */

/** One reply as a line of text; markup is dropped. */
export function describe (r: Reply): string {
  const text = typeof r.text === 'string' ? r.text.replace(/<[^>]+>/g, '') : ''
  const buttons = Array.isArray(r.buttons) ? r.buttons : []
  switch (r.type) {
    case 'text': return text
    case 'buttons': return buttons.map((b) => `[${b.text ?? ''}]`).join(' ')
    case 'inlineButtons': return buttons.map((b) => `${b.text ?? ''} <${b.url ?? ''}>`).join('  ')
    case 'image': return `(image) ${text}`
    case 'switch': return `(handing over to a person) ${String(r.firstMessage ?? '')}`
    case 'timeout': return `(waiting ${String(r.interval ?? '?')} s for you)`
    default: return `(${String(r.type)}) ${JSON.stringify(r)}`
  }
}

/** A line per reply, `who: …`; anything that is not a list of replies gives none. */
export function replyLines (who: string, replies: unknown): string[] {
  if (!Array.isArray(replies)) return []
  return replies.filter(isReply).map((r) => `${who}: ${oneLine(describe(r))}`)
}

const SPEAKERS: Record<ChatAuthor, string> = { client: 'you', bot: 'bot', agent: 'agent', system: 'system' }

/** One line per message of the history, whatever shape the server's history came in. */
export function historyLines (chat: ChatMessage[]): string[] {
  if (chat.length === 0) return ['(no messages yet)']
  return chat.map((m) => {
    // Replies as a live answer prints them; a text-only entry by its text (replies that print as nothing fall back to it too).
    const replies = m.replies?.map((r) => describe(r)).filter((d) => d !== '').join('  ') ?? ''
    const said = replies !== '' ? replies : m.text ?? (m.event === undefined ? '' : `(event ${m.event.name})`)
    return `${SPEAKERS[m.author]}: ${oneLine(said)}`
  })
}

/** What a client sent, as its clientRequest event carries it: a text, or a named event. */
export function requestText (body: Record<string, unknown>): string {
  if (typeof body.query === 'string') return body.query
  if (typeof body.event === 'string') return `(event ${body.event})`
  return '(a message)'
}

/** A wait before the next try, as a person reads it: tenths below 10 s. */
export function seconds (ms: number): string {
  const s = Math.max(0, ms) / 1000
  return s < 10 ? s.toFixed(1) : String(Math.round(s))
}

/** The line for a `reconnecting` state change: a lost connection, or a try that failed. */
export function retryLine (change: StateChange): string {
  const what = change.previous === 'open' ? 'connection lost' : 'cannot reach the bridge'
  const why = change.reason !== undefined && change.reason !== '' ? ` (${change.reason})` : ''
  return `${what}${why}; retrying in ${seconds(change.delayMs ?? 0)} s`
}

export const COMMANDS: ReadonlyArray<readonly [string, string]> = [
  ['/history', 'the conversation so far (50 messages at most)'],
  ['/unread', 'how many bot and agent messages are unread'],
  ['/ticket', 'the ticket to pass as CHAT_AUTH to another chat, to be the same visitor there'],
  ['/help', 'this list'],
  ['/quit', 'leave (Ctrl-D and Ctrl-C too)']
]

export function helpLines (): string[] {
  return [
    'Type a message and press Enter to send it. Commands:',
    ...COMMANDS.map(([name, what]) => `  ${name.padEnd(9)} ${what}`)
  ]
}

/** Tickets of ticket mode look like `t1.<payload>.<mac>`; anything else given as CHAT_AUTH is taken for a JWT. */
export function isTicket (credential: string): boolean {
  return credential.startsWith('t1.')
}

function isReply (value: unknown): value is Reply {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}

/** A message spread over several lines still prints as one. */
function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}
