#!/usr/bin/env node
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { BridgeClient, type BridgeEvent, type ChatAuthor, type ChatMessage, type Reply, type WebSocketConstructor } from '../client/index.js'

/**
 * A terminal chat client: `npm run chat`. It speaks to the bridge through
 * the package's own client, so it reconnects, resumes and resends like any
 * other: type a line to send it; the bot's replies and every event pushed to
 * this visitor are printed.
 * Settings: BRIDGE_URL (default ws://127.0.0.1:3000/v1/ws), CHAT_AUTH (a
 * ticket or JWT), CHAT_CID.
 */
const url = process.env.BRIDGE_URL ?? `ws://127.0.0.1:${process.env.PORT ?? '3000'}/v1/ws`

function describe (r: Reply & Record<string, unknown>): string {
  const text = typeof r.text === 'string' ? r.text.replace(/<[^>]+>/g, '') : ''
  const buttons = Array.isArray(r.buttons) ? (r.buttons as Array<{ text?: string, url?: string }>) : []
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

function printReplies (who: string, replies: unknown): void {
  if (!Array.isArray(replies)) return
  for (const r of replies as Array<Reply & Record<string, unknown>>) console.log(`${who}: ${describe(r)}`)
}

const SPEAKERS: Record<ChatAuthor, string> = { client: 'you', bot: 'bot', agent: 'agent', system: 'system' }

/** One line per message of the history, whatever shape the server's history came in. */
function printHistory (chat: ChatMessage[]): void {
  if (chat.length === 0) console.log('(no messages yet)')
  for (const m of chat) {
    // Replies as a live answer prints them; a text-only entry by its text (replies that print as nothing fall back to it too).
    const replies = m.replies?.map((r) => describe(r)).filter((d) => d !== '').join('  ') ?? ''
    const said = replies !== '' ? replies : m.text ?? (m.event === undefined ? '' : `(event ${m.event.name})`)
    console.log(`${SPEAKERS[m.author]}: ${said.replace(/\s*\n\s*/g, ' ')}`)
  }
}

function printEvent (ev: BridgeEvent): void {
  const body = (ev.event ?? {}) as Record<string, unknown>
  const data = body.data as { replies?: unknown, nlpClass?: string } | undefined
  switch (ev.type) {
    case 'clientRequest': console.log(`  (you said, here or in another tab): ${String(body.query ?? body.event ?? '')}`); break
    case 'botResponse': break // the answer to this terminal's own message is printed from its result
    case 'agentResponse': printReplies('agent', data?.replies ?? [{ type: 'text', text: String(body.text ?? '') }]); break
    case 'webhook': printReplies(data?.nlpClass === '/agent' ? 'agent' : 'bot', data?.replies); break
    default: console.log(`  event ${ev.type}: ${JSON.stringify(body).slice(0, 200)}`)
  }
}

const client = new BridgeClient({
  url,
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  ...(process.env.CHAT_AUTH === undefined ? {} : { auth: process.env.CHAT_AUTH }),
  ...(process.env.CHAT_CID === undefined ? {} : { cid: process.env.CHAT_CID })
})
let quitting = false
const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' })

client.on('welcome', (w) => {
  console.log(`connected as ${w.clientId} (cid ${w.cid}). Type a message; /history, /unread, /ticket, /quit.`)
  rl.prompt()
})
client.on('event', (ev) => { printEvent(ev); rl.prompt(true) })
client.on('state', (s) => {
  if (s.state === 'reconnecting' && s.previous === 'open') console.log(`connection lost (${String(s.code ?? '')}); reconnecting…`)
  if (s.state === 'closed' && !quitting) {
    console.log(`closed by the bridge: ${s.reason ?? String(s.code ?? '')}`)
    process.exit(1)
  }
})
client.on('gap', (g) => { console.log(`  (some events could not be replayed: ${g.reason})`) })

async function run (line: string): Promise<void> {
  if (line === '/quit') {
    quitting = true
    client.close()
    rl.close()
    return
  }
  if (line === '/ticket') console.log(client.welcome?.ticket ?? '(no ticket: JWT mode)')
  else if (line === '/history') printHistory((await client.history({ limit: 50 })).chat)
  else if (line === '/unread') console.log(`unread: ${await client.unreadCount()}`)
  else printReplies('bot', (await client.send(line)).data?.replies)
}

rl.on('line', (line) => {
  const text = line.trim()
  if (text === '') { rl.prompt(); return }
  run(text).then(() => { rl.prompt(true) }, (err: unknown) => {
    console.log(`error: ${err instanceof Error ? err.message : String(err)}`)
    rl.prompt(true)
  })
})
rl.on('close', () => {
  quitting = true
  client.close()
  process.exit(0)
})
client.connect().catch((err: unknown) => { console.log(`cannot connect: ${String(err)}`) })
