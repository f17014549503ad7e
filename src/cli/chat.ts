#!/usr/bin/env node
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { BridgeClient, CloseCode, type BotAnswer, type StateChange, type WebSocketConstructor } from '@chatapi-bridge/client'
import { ChatFeed } from './chat-feed.js'
import { helpLines, historyLines, isTicket, retryLine } from './chat-format.js'
import { Terminal } from './terminal.js'

/**
 * A terminal chat client: `npm run chat`. It speaks to the bridge through
 * the package's own client, so it reconnects, resumes and resends like any
 * other: type a line to send it. It shows the conversation of every socket
 * of this visitor (other terminals, browser tabs) once each.
 * Settings: BRIDGE_URL (default ws://127.0.0.1:3000/v1/ws), CHAT_AUTH (a
 * ticket or JWT), CHAT_CID.
 */
const url = process.env.BRIDGE_URL ?? `ws://127.0.0.1:${process.env.PORT ?? '3000'}/v1/ws`
const given = process.env.CHAT_AUTH === undefined || process.env.CHAT_AUTH.trim() === '' ? undefined : process.env.CHAT_AUTH.trim()
/** A credential given that is not a ticket: the bridge is in JWT mode, and this is the token. */
const jwt = given !== undefined && !isTicket(given) ? given : undefined
/** In ticket mode: the newest ticket, the one the next hello presents. */
let ticket = given !== undefined && isTicket(given) ? given : undefined
/** What the latest hello presented: a 4401 is about it. */
let presented: string | undefined

const client = new BridgeClient({
  url,
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  // A function rather than a string, so that a ticket that no longer verifies can be dropped and the next hello goes without it.
  auth: () => {
    presented = jwt ?? ticket
    return presented
  },
  ...(process.env.CHAT_CID === undefined ? {} : { cid: process.env.CHAT_CID })
})
const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' })
const term = new Terminal(rl, process.stdout)
const feed = new ChatFeed()
/** Commands still running: at the end of the input, they finish before the chat exits. */
const running = new Set<Promise<void>>()
let quitting = false
let shownClientId: string | undefined

client.on('welcome', (w) => {
  if (typeof w.ticket === 'string') ticket = w.ticket
  if (w.clientId === shownClientId) {
    term.say('connected')
    return
  }
  shownClientId = w.clientId
  term.say(`connected as ${w.clientId} (cid ${w.cid}). Type a message; /help lists the commands.`)
})
client.on('event', (ev) => { term.say(feed.event(ev)) })
client.on('state', (s) => {
  if (s.state === 'reconnecting') term.say(retryLine(s))
  if (s.state === 'closed' && !quitting) closed(s)
})
client.on('gap', (g) => { term.say(`  (some events could not be replayed: ${g.reason}; /history shows the conversation)`) })
client.on('error', (err) => { term.say(`  (${err.message})`) })

/** The bridge closed the socket with a code after which the client does not retry by itself. */
function closed (s: StateChange): void {
  if (s.code === CloseCode.UNAUTHORIZED && jwt === undefined && presented !== undefined) {
    // A development bridge makes a new random TICKET_SECRET at each start, and then no earlier ticket verifies.
    ticket = undefined
    term.say('the ticket is no longer valid (the bridge restarted with another TICKET_SECRET, or it expired); starting as a new visitor')
    connect()
    return
  }
  if (s.code === CloseCode.UNAUTHORIZED) {
    term.say(jwt === undefined
      ? 'the bridge wants a credential (it is in JWT mode): set CHAT_AUTH to a JWT'
      : `the bridge refused CHAT_AUTH (${s.reason ?? ''}): give a valid, unexpired JWT`)
  } else {
    term.say(`closed by the bridge: ${s.reason ?? ''}${s.code === undefined ? '' : ` (${s.code})`}`)
  }
  quit(1)
}

function connect (): void {
  // The state listener reports every close, so a rejection here says nothing more.
  client.connect().catch(() => {})
}

function quit (code: number): void {
  quitting = true
  client.close()
  process.exit(code)
}

async function run (line: string): Promise<void> {
  switch (line) {
    case '/quit': quit(0); return
    case '/help': term.say(helpLines()); return
    case '/ticket': term.say(ticket ?? (jwt === undefined ? '(no ticket yet)' : '(no ticket: JWT mode)')); return
    case '/history': term.say(historyLines((await client.history({ limit: 50 })).chat)); return
    case '/unread': term.say(`unread: ${await client.unreadCount()}`); return
  }
  // Any other line is a message, "/start" and the like included.
  feed.sending()
  let answer: BotAnswer | undefined
  try {
    answer = await client.send(line)
  } finally {
    term.say(feed.sent(answer))
  }
}

rl.on('line', (line) => {
  const text = line.trim()
  if (text !== '') {
    const done = run(text).catch((err: unknown) => { term.say(`error: ${err instanceof Error ? err.message : String(err)}`) })
    running.add(done)
    void done.then(() => { running.delete(done) })
  }
  term.prompt()
})
rl.on('SIGINT', () => { quit(0) })
// The end of the input (Ctrl-D, or the end of a pipe): what was typed still gets its answer.
rl.on('close', () => { void Promise.allSettled([...running]).then(() => { quit(0) }) })

term.say(`connecting to ${url}…`)
term.prompt()
connect()
