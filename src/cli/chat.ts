#!/usr/bin/env node
import { createInterface } from 'node:readline'
import WebSocket from 'ws'

/**
 * A terminal chat client: `npm run chat`. It connects to the bridge, keeps
 * its ticket for reconnects, sends each line typed as a message, and prints
 * the bot's replies and every event pushed to it.
 * Settings: BRIDGE_URL (default ws://127.0.0.1:3000/v1/ws), CHAT_AUTH (a
 * ticket or JWT), CHAT_CID.
 */
const url = process.env.BRIDGE_URL ?? `ws://127.0.0.1:${process.env.PORT ?? '3000'}/v1/ws`
let auth = process.env.CHAT_AUTH
let cursor: string | undefined
let cid = process.env.CHAT_CID
let seq = 0
let quitting = false

interface Reply { type?: string, text?: string, buttons?: Array<{ text?: string, url?: string }>, imageUrl?: string, interval?: number, firstMessage?: string }

function printReplies (who: string, replies: Reply[] | undefined): void {
  for (const r of replies ?? []) {
    switch (r.type) {
      case 'text': console.log(`${who}: ${(r.text ?? '').replace(/<[^>]+>/g, '')}`); break
      case 'buttons': console.log(`${who}: [${(r.buttons ?? []).map((b) => b.text).join('] [')}]`); break
      case 'inlineButtons': console.log(`${who}: ${(r.buttons ?? []).map((b) => `${b.text ?? ''} <${b.url ?? ''}>`).join('  ')}`); break
      case 'image': console.log(`${who}: (image) ${r.text ?? ''}`); break
      case 'switch': console.log(`${who}: (handing over to a person) ${r.firstMessage ?? ''}`); break
      case 'timeout': console.log(`${who}: (waiting ${r.interval ?? '?'} s for you)`); break
      default: console.log(`${who}: (${r.type ?? 'reply'}) ${JSON.stringify(r)}`)
    }
  }
}

function printEvent (ev: { type?: string, event?: Record<string, unknown> }): void {
  const body = ev.event ?? {}
  const data = body.data as { replies?: Reply[] } | undefined
  switch (ev.type) {
    case 'clientRequest': console.log(`  (you, in another tab or here): ${String(body.query ?? body.event ?? '')}`); break
    case 'botResponse': break // this tab printed the result of its own send already
    case 'agentResponse': printReplies('agent', data?.replies ?? [{ type: 'text', text: String(body.text ?? '') }]); break
    default: console.log(`  event ${ev.type ?? '?'}: ${JSON.stringify(body).slice(0, 200)}`)
  }
}

function connect (rl: ReturnType<typeof createInterface>): void {
  const ws = new WebSocket(url, ['chatapi-bridge.v1'])
  ws.on('open', () => {
    const hello: Record<string, unknown> = { type: 'hello' }
    if (auth !== undefined) hello.auth = auth
    if (cid !== undefined) hello.cid = cid
    if (cursor !== undefined) hello.resume = cursor
    ws.send(JSON.stringify(hello))
  })
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as Record<string, unknown>
    if (f.type === 'welcome') {
      if (typeof f.ticket === 'string') auth = f.ticket
      cid = f.cid as string
      console.log(`connected as ${String(f.clientId)} (cid ${cid}). Type a message; /history, /unread, /ticket, /quit.`)
      rl.prompt()
    } else if (f.type === 'event') {
      cursor = f.cursor as string
      printEvent(f.event as { type?: string, event?: Record<string, unknown> })
      rl.prompt(true)
    } else if (f.type === 'result') {
      const result = f.result as { data?: { replies?: Reply[] }, messages?: unknown[], count?: number, questionId?: string } | undefined
      if (f.ok !== true) console.log(`error: ${JSON.stringify(f.error)}`)
      else if (result?.data?.replies !== undefined) printReplies('bot', result.data.replies)
      else if (result?.messages !== undefined) console.log(`history: ${result.messages.length} messages`)
      else if (result?.count !== undefined) console.log(`unread: ${result.count}`)
      else console.log(JSON.stringify(result))
      rl.prompt(true)
    } else if (f.type === 'error') {
      console.log(`error: ${String(f.message)}`)
    } else if (f.type === 'ping') {
      ws.send('{"type":"pong"}')
    }
  })
  ws.on('close', (code) => {
    if (quitting) return
    if (code === 4401 || code === 4403 || code === 4502) {
      console.log(`closed by the bridge (${code}); not reconnecting`)
      process.exit(1)
    }
    console.log(`connection closed (${code}); reconnecting…`)
    setTimeout(() => { connect(rl) }, 1000 + Math.random() * 1000)
  })
  ws.on('error', (err) => { console.log(`connection error: ${err.message}`) })
  rl.removeAllListeners('line')
  rl.on('line', (line) => {
    const text = line.trim()
    if (text === '') { rl.prompt(); return }
    if (text === '/quit') { quitting = true; ws.close(1000); rl.close(); return }
    const id = String(++seq)
    if (text === '/ticket') { console.log(auth ?? '(no ticket: JWT mode)'); rl.prompt(); return }
    if (text === '/history') ws.send(JSON.stringify({ type: 'history', id, limit: 20 }))
    else if (text === '/unread') ws.send(JSON.stringify({ type: 'unreadCount', id }))
    else ws.send(JSON.stringify({ type: 'send', id, query: text }))
  })
}

const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' })
rl.on('close', () => { quitting = true; process.exit(0) })
connect(rl)
