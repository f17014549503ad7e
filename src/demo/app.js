/* global document, location, sessionStorage, DOMParser, IntersectionObserver, ResizeObserver, Node, URL, URLSearchParams, crypto, setTimeout, clearTimeout */
/**
 * The demo chat page. It renders the conversation from three sources that
 * overlap: the answers to its own sends, the events the bridge pushes (which
 * include the other tabs' messages), and the history loaded after a welcome
 * that could not resume. The SDK reads events and history alike as chat
 * messages (`historyMessages`), whatever shape the server sent. Every
 * message is keyed by its questionId, so each is shown once whichever
 * source brings it first.
 */
import { BridgeClient, historyMessages, parseTimestamp } from '../sdk/index.js'

const byId = (id) => document.getElementById(id)
const log = byId('log')
const empty = byId('empty')
const form = byId('composer')
const input = byId('input')
const statusLine = byId('status')
const statusText = byId('status-text')
const retryButton = byId('retry')
const unreadBadge = byId('unread')
const typing = byId('typing')
const clientIdText = byId('client-id')
const baseTitle = document.title

/** Each tab is its own connection (cid), kept for the tab's life; the ticket in localStorage makes them one visitor. */
function tabCid () {
  const key = 'chatapi-bridge-demo:cid'
  const made = 'tab-' + Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('')
  try {
    const kept = sessionStorage.getItem(key)
    if (kept !== null) return kept
    sessionStorage.setItem(key, made)
  } catch {
    // No session storage: this page load is the connection.
  }
  return made
}

const socketUrl = new URL('v1/ws', location.href)
socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:'
socketUrl.search = ''
const channel = new URLSearchParams(location.search).get('channel') ?? undefined
const client = new BridgeClient({ url: socketUrl.toString(), channel, cid: tabCid() })

// ---- messages -------------------------------------------------------------

/** Rendered messages by key: `q:<questionId>` for the visitor's, `a:<questionId>` for the bot's or an agent's, `s:` for a notice. */
const shown = new Map()
/** The visitor's messages of this tab still on their way, oldest first. */
const sending = []

/** Epoch ms of an upstream time (the SDK reads a zone-less one as UTC, as the Chat API means it); now when there is none. */
function timeOf (timestamp) {
  return parseTimestamp(timestamp) ?? Date.now()
}

/** The key of a message of the SDK's chat list; one without a questionId is known by its time and text. */
function keyOf (m) {
  const prefix = m.author === 'client' ? 'q' : m.author === 'system' ? 's' : 'a'
  return m.id !== undefined ? `${prefix}:${m.id}` : `${prefix}:@${m.at ?? ''}:${m.text ?? m.event?.name ?? ''}`
}

function element (tag, className, text) {
  const el = document.createElement(tag)
  if (className) el.className = className
  if (text !== undefined) el.textContent = text
  return el
}

/** Puts a message in time order; at equal times the visitor's message comes before the answer. Unsent ones stay last. */
function place (el) {
  const t = Number(el.dataset.t)
  const rank = Number(el.dataset.rank)
  let before = null
  for (let node = log.lastElementChild; node !== null; node = node.previousElementSibling) {
    const nt = Number(node.dataset.t)
    if (nt < t || (nt === t && Number(node.dataset.rank) <= rank)) break
    before = node
  }
  log.insertBefore(el, before)
  empty.hidden = true
  if (before === null && (atBottom || el.classList.contains('me'))) toBottom()
}

/** Whether the visitor is at the end of the conversation; new messages keep it there, but never pull them down from older ones. */
let atBottom = true
log.addEventListener('scroll', () => { atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80 })

function toBottom () {
  log.scrollTop = log.scrollHeight
}

// A smaller window, or a phone's keyboard coming up, must not hide the newest message.
new ResizeObserver(() => { if (atBottom) toBottom() }).observe(log)

/** `t`: epoch ms, or undefined for a message still on its way. */
function messageShell (who, label, t) {
  const el = element('div', `msg ${who}`)
  el.append(element('span', 'visually-hidden', label))
  const bubble = element('div', 'bubble')
  el.append(bubble)
  const time = element('time', 'time')
  if (t !== undefined) stamp(el, time, t)
  el.append(time)
  return { el, bubble }
}

function stamp (el, time, t) {
  el.dataset.t = String(t)
  time.dateTime = new Date(t).toISOString()
  time.textContent = new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

/**
 * Shows a message of the SDK's chat list (`{ id, at, author, text,
 * replies, event }`) at time `t`, under `key`, unless it is shown already.
 */
function showChat (m, t, key = keyOf(m)) {
  if (shown.has(key)) return
  if (m.author === 'client') showVisitor(key, m.text ?? `(${m.event?.name ?? 'event'})`, t)
  else if (m.author === 'system') showNotice(key, m.text ?? '', t)
  // A message with a text and no replies (an agent's line, a history entry) shows as one text reply.
  else showAnswer(key, m.id, m.replies ?? (m.text === undefined ? [] : [{ type: 'text', text: m.text }]), t, m.author)
}

function showVisitor (key, text, t) {
  const { el, bubble } = messageShell('me', 'You said:', t)
  el.dataset.key = key
  el.dataset.rank = '0'
  bubble.append(element('p', 'text', text))
  shown.set(key, el)
  place(el)
}

function showAnswer (key, questionId, replies, t, who) {
  if (!Array.isArray(replies) || replies.length === 0) return
  const { el, bubble } = messageShell(who, who === 'agent' ? 'The agent said:' : 'The bot said:', t)
  el.dataset.key = key
  el.dataset.rank = '1'
  if (who === 'agent') bubble.append(element('span', 'tag', 'Agent'))
  for (const reply of replies) renderReply(bubble, reply)
  shown.set(key, el)
  place(el)
  // Only a message with a questionId can be marked READ.
  if (questionId !== undefined) {
    el.dataset.qid = questionId
    readWhenSeen.observe(el)
  }
  refreshUnreadSoon()
}

/** A line of the platform's own (a SYSTEM message: the chat was closed, say). */
function showNotice (key, text, t) {
  if (text === '') return
  const { el, bubble } = messageShell('system', 'Notice:', t)
  el.dataset.key = key
  el.dataset.rank = '1'
  bubble.append(element('p', 'notice', text))
  shown.set(key, el)
  place(el)
}

// ---- replies ----------------------------------------------------------------

function renderReply (bubble, reply) {
  switch (reply.type) {
    case 'text': {
      const p = element('p', 'text')
      if (typeof reply.markup === 'string') p.append(sanitize(reply.markup))
      else p.textContent = String(reply.text ?? '')
      bubble.append(p)
      break
    }
    case 'buttons':
      bubble.append(buttonRow(reply.buttons))
      break
    case 'inlineButtons':
      bubble.append(buttonRow(reply.buttons))
      break
    case 'image': {
      const figure = element('figure', 'image')
      const img = element('img')
      img.alt = String(reply.text ?? 'An image from the bot')
      img.loading = 'lazy'
      // The image gets its height when it loads: stay at the end if that is where the visitor was.
      img.addEventListener('load', () => { if (atBottom) toBottom() })
      if (safeImage(reply.imageUrl)) img.src = reply.imageUrl
      figure.append(img)
      if (typeof reply.text === 'string' && reply.text !== '') figure.append(element('figcaption', '', reply.text))
      bubble.append(figure)
      break
    }
    case 'switch':
      bubble.append(element('p', 'notice', 'You are being handed over to a person. Their replies will appear here.'))
      break
    case 'timeout':
      bubble.append(element('p', 'notice', `The bot waits ${Number(reply.interval) || 0} s for your next message.`))
      break
    default:
      if (typeof reply.text === 'string') bubble.append(element('p', 'text', reply.text))
  }
}

/** Buttons that send their text, and links (inline buttons) that open in a new tab. */
function buttonRow (buttons) {
  const row = element('div', 'choices')
  for (const b of Array.isArray(buttons) ? buttons : []) {
    const label = String(b?.text ?? '')
    if (typeof b?.url === 'string' && safeLink(b.url)) {
      const a = element('a', 'chip link', label || b.url)
      a.href = b.url
      a.target = '_blank'
      a.rel = 'noopener noreferrer'
      a.append(element('span', 'visually-hidden', ' (opens in a new tab)'))
      row.append(a)
    } else if (label !== '') {
      const button = element('button', 'chip', label)
      button.type = 'button'
      button.addEventListener('click', () => { say(label) })
      row.append(button)
    }
  }
  return row
}

function safeLink (url) {
  return /^https?:\/\//i.test(url.trim())
}

function safeImage (url) {
  return typeof url === 'string' && (safeLink(url) || /^data:image\/(?:png|jpeg|gif|webp|svg\+xml)[;,]/i.test(url))
}

/** Inline tags the bot's markup may use; anything else is reduced to its text. */
const KEEP = new Set(['B', 'STRONG', 'I', 'EM', 'U', 'S', 'CODE', 'BR', 'A'])
/** Elements whose content is not text to show. */
const DROP = new Set(['SCRIPT', 'STYLE', 'TEMPLATE', 'NOSCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'SVG', 'MATH', 'HEAD', 'TITLE', 'TEXTAREA', 'SELECT'])

/**
 * Rebuilds the markup from scratch with only the allowed tags and no
 * attribute but an http(s) href. DOMParser makes an inert document: nothing
 * in it runs or loads. The result is built node by node, never with innerHTML.
 */
function sanitize (markup) {
  const doc = new DOMParser().parseFromString(markup, 'text/html')
  const out = document.createDocumentFragment()
  copyChildren(doc.body, out, 0)
  return out
}

function copyChildren (from, to, depth) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.append(node.data)
      continue
    }
    if (node.nodeType !== Node.ELEMENT_NODE || DROP.has(node.tagName)) continue
    if (depth > 16) {
      to.append(node.textContent ?? '')
      continue
    }
    const href = node.tagName === 'A' ? (node.getAttribute('href') ?? '').trim() : ''
    if (!KEEP.has(node.tagName) || (node.tagName === 'A' && !safeLink(href))) {
      copyChildren(node, to, depth + 1)
      continue
    }
    const copy = document.createElement(node.tagName.toLowerCase())
    if (node.tagName === 'A') {
      copy.href = href
      copy.target = '_blank'
      copy.rel = 'noopener noreferrer'
    }
    copyChildren(node, copy, depth + 1)
    to.append(copy)
  }
}

// ---- sending ----------------------------------------------------------------

function pendingBubble (text) {
  const { el, bubble } = messageShell('me sending', 'You said:')
  el.dataset.t = 'Infinity'
  el.dataset.rank = '0'
  bubble.append(element('p', 'text', text))
  el.querySelector('.time').textContent = 'Sending…'
  place(el)
  const entry = { el, text, key: undefined }
  sending.push(entry)
  return entry
}

/** A message of ours is known upstream: it gets its key and its place in time `t`, unless another source showed it already. */
function confirm (entry, questionId, t) {
  const key = `q:${questionId}`
  const i = sending.indexOf(entry)
  if (i >= 0) sending.splice(i, 1)
  const other = shown.get(key)
  if (other !== undefined && other !== entry.el) {
    entry.el.remove()
    return
  }
  entry.el.classList.remove('sending')
  entry.el.dataset.key = key
  stamp(entry.el, entry.el.querySelector('.time'), t)
  shown.set(key, entry.el)
  entry.el.remove()
  place(entry.el)
}

function failed (entry, text, err) {
  const i = sending.indexOf(entry)
  if (i >= 0) sending.splice(i, 1)
  entry.el.classList.remove('sending')
  entry.el.classList.add('failed')
  const time = entry.el.querySelector('.time')
  time.textContent = `Not delivered (${err?.code ?? 'error'}). `
  const again = element('button', 'link-button', 'Send again')
  again.type = 'button'
  again.addEventListener('click', () => {
    entry.el.remove()
    say(text)
  })
  time.after(again)
}

let inFlight = 0
function setTyping (delta) {
  inFlight += delta
  typing.hidden = inFlight === 0
}

async function say (raw) {
  const text = raw.trim()
  if (text === '') return
  const entry = pendingBubble(text)
  setTyping(1)
  try {
    const answer = await client.send(text)
    const t = timeOf(answer.timestamp)
    confirm(entry, answer.questionId, t)
    showChat({ id: answer.questionId, author: 'bot', replies: answer.data?.replies, raw: answer }, t)
  } catch (err) {
    failed(entry, text, err)
  } finally {
    setTyping(-1)
  }
}

form.addEventListener('submit', (e) => {
  e.preventDefault()
  const text = input.value
  input.value = ''
  input.focus()
  void say(text)
})

for (const chip of byId('suggestions').querySelectorAll('button[data-say]')) {
  chip.addEventListener('click', () => {
    void say(chip.dataset.say)
    input.focus()
  })
}

// ---- events from the bridge ----------------------------------------------

/**
 * What the platform sends to the webhook (async answers, campaigns, agent
 * replies, the bot speaking up after a timeout) is an answer to no request
 * in the same breath: read as such, the SDK tells an agent's by its state.
 */
function webhookMessages (event) {
  return historyMessages([{ questionId: event.questionId, timestamp: event.timestamp, request: null, response: event.data }])
}

client.on('event', (ev) => {
  const messages = ev.type === 'webhook' ? webhookMessages(ev.event) : historyMessages([ev])
  for (const m of messages) {
    const t = m.at ?? Date.now()
    // Our own message coming back: it is the oldest one on its way with that text.
    const mine = m.author === 'client' && m.id !== undefined && ev.event.cid === client.cid
      ? sending.find((s) => s.text === m.text)
      : undefined
    if (mine !== undefined) confirm(mine, m.id, t)
    else showChat(m, t)
  }
})

async function loadHistory () {
  log.setAttribute('aria-busy', 'true')
  try {
    // The SDK reads the conversation from whatever shape the server's history has.
    const { chat } = await client.history({ limit: 100 })
    let t = 0
    const taken = new Map()
    for (const m of chat) {
      // A message with no time goes where the history puts it: after the one before.
      t = m.at ?? t
      // A server that keeps one entry per reply may give several the same questionId: each is shown.
      const key = keyOf(m)
      const n = (taken.get(key) ?? 0) + 1
      taken.set(key, n)
      showChat(m, t, n === 1 ? key : `${key}#${n}`)
    }
    toBottom()
  } catch {
    // The conversation from now on still shows; a reconnect tries the history again.
  } finally {
    log.removeAttribute('aria-busy')
  }
}

let historyLoaded = false
let visitor
client.on('welcome', (w) => {
  // After a refused ticket the page starts over as a new visitor, whose conversation this is not.
  if (visitor !== undefined && w.clientId !== visitor) {
    for (const el of shown.values()) el.remove()
    shown.clear()
    empty.hidden = false
  }
  visitor = w.clientId
  clientIdText.textContent = w.clientId
  // A resumed connection gets every event it missed; otherwise the history fills the gap.
  if (!historyLoaded || !w.resumed) {
    historyLoaded = true
    void loadHistory()
  }
  refreshUnreadSoon()
})

// ---- connection state ---------------------------------------------------------

const LABELS = { connecting: 'Connecting…', open: 'Online', reconnecting: 'Reconnecting…', closed: 'Offline' }
client.on('state', ({ state, reason }) => {
  statusLine.dataset.state = state
  statusLine.dataset.transport = client.transport ?? ''
  statusText.textContent = state === 'closed' && reason ? `Offline: ${reason}` : state === 'open' && client.transport === 'http' ? 'Online (over HTTP)' : LABELS[state]
  retryButton.hidden = state !== 'closed'
})
retryButton.addEventListener('click', () => { client.connect().catch(() => {}) })

// ---- read receipts and the unread count ------------------------------------------

const toRead = new Set()
const markedRead = new Set()
const readWhenSeen = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue
    readWhenSeen.unobserve(entry.target)
    const qid = entry.target.dataset.qid
    if (qid !== undefined && !markedRead.has(qid)) toRead.add(qid)
  }
  markRead()
}, { root: log, rootMargin: '0px 0px -40px 0px' })

/** Marks the answers the visitor has seen as READ, in one request. */
async function markRead () {
  if (toRead.size === 0 || document.visibilityState !== 'visible' || client.state !== 'open') return
  const ids = [...toRead]
  toRead.clear()
  for (const id of ids) markedRead.add(id)
  try {
    await client.setStatuses(ids.map((questionId) => ({ questionId, status: 'READ' })))
  } catch {
    // All or nothing upstream: one unknown id fails the batch, so mark them one by one.
    await Promise.allSettled(ids.map((id) => client.setStatus(id, 'READ')))
  }
  refreshUnreadSoon()
}
document.addEventListener('visibilitychange', () => { void markRead() })
client.on('welcome', () => { void markRead() })

let unreadTimer
function refreshUnreadSoon () {
  clearTimeout(unreadTimer)
  unreadTimer = setTimeout(async () => {
    if (client.state !== 'open') return
    try {
      showUnread(await client.unreadCount())
    } catch {
      // Shown again after the next change.
    }
  }, 250)
}

function showUnread (count) {
  unreadBadge.hidden = count === 0
  unreadBadge.textContent = `${count} unread`
  document.title = count === 0 ? baseTitle : `(${count}) ${baseTitle}`
}

client.connect().catch(() => {})
input.focus()
