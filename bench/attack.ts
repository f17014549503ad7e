/**
 * Replays attacks of one anonymous client from outside against a bridge and
 * prints what each costs the bridge, to compare two builds:
 *
 *   npx tsc -p bench && node bench/results/build/attack.js --dist=/path/to/dist [--only=lockout,fairness]
 *
 * Each scenario gets a fresh emulator and a fresh bridge from `--dist`
 * (default: this checkout's dist/), with the bridge's default settings
 * except where the scenario says. See bench/README.md.
 */
import { connect, type Socket } from 'node:net'
import WebSocket, { type RawData } from 'ws'
import { freePort, root, sleep, startNode, usage, waitHttp, type Proc } from './procs.js'
import { fmt, summarize } from './stats.js'

const args = new Map(process.argv.slice(2).map((a) => {
  const [k, v] = a.replace(/^--/, '').split('=')
  return [k as string, v ?? 'true']
}))
const dist = (args.get('dist') ?? `${root}dist`).replace(/\/+$/, '')
const only = args.get('only')?.split(',').map((s) => s.trim()).filter((s) => s !== '')

const TOKEN = 'attack-token'
const PROTOCOL = 'chatapi-bridge.v1'
/** A query of about 49 KB and a state of about 60 KB: both fit the default 64 KiB frame limit. */
const QUERY = 'a'.repeat(49_000)
const STATE = { blob: 'b'.repeat(60_000) }
const WEBHOOK_SECRET = 'attack-webhook-secret-0123456789'

function log (msg: string): void {
  process.stderr.write(`[attack ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

// ---------------------------------------------------------------- processes

const live = new Set<Proc>()

async function stopAll (): Promise<void> {
  const ps = [...live]
  live.clear()
  await Promise.all(ps.map(async (p) => { await p.stop() }))
}

interface Stack {
  emu: Proc
  emuOrigin: string
  bridge: Proc
  origin: string
  ws: string
  port: number
  /** Set when the bridge exits before the scenario stops it. */
  exited?: string
}

let current: Stack | undefined

/** A fresh emulator and a fresh bridge on free ports; `env` adds bridge settings. */
async function startStack (env: Record<string, string> = {}): Promise<Stack> {
  const emuPort = await freePort()
  const emu = startNode('emulator', `${dist}/emulator/main.js`, {
    EMULATOR_PORT: String(emuPort),
    EMULATOR_HOST: '127.0.0.1',
    EMULATOR_TOKENS: TOKEN,
    EMULATOR_LOG_LEVEL: 'warn'
  })
  live.add(emu)
  const emuOrigin = `http://127.0.0.1:${emuPort}`
  await waitHttp(`${emuOrigin}/operator/stats`)
  const port = await freePort()
  const bridge = startNode('bridge', `${dist}/server.js`, {
    PORT: String(port),
    HOST: '127.0.0.1',
    UPSTREAM_URL: `${emuOrigin}/chatapi`,
    CHATAPI_TOKEN: TOKEN,
    TICKET_SECRET: 'attack-ticket-secret-0123456789',
    LOG_LEVEL: 'warn',
    METRICS: 'true',
    ...env
  })
  live.add(bridge)
  const origin = `http://127.0.0.1:${port}`
  const stack: Stack = { emu, emuOrigin, bridge, origin, ws: `ws://127.0.0.1:${port}/v1/ws`, port }
  bridge.child.once('exit', (code, signal) => { stack.exited = String(code ?? signal) })
  current = stack
  await waitHttp(`${origin}/readyz`)
  return stack
}

// ---------------------------------------------------------------- measurements

interface Mem { heap: number, rss: number }

function metric (text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)
  return m === null ? NaN : Number(m[1])
}

function procRss (pid: number): number {
  try {
    return usage(pid).rssBytes
  } catch {
    return NaN
  }
}

/** Heap used and RSS from /metrics (prom-client's defaults); RSS from /proc when /metrics does not answer. */
async function memOf (s: Stack): Promise<Mem> {
  let heap = NaN
  let rss = NaN
  try {
    const res = await fetch(`${s.origin}/metrics`, { signal: AbortSignal.timeout(5000) })
    const text = await res.text()
    heap = metric(text, 'nodejs_heap_size_used_bytes')
    rss = metric(text, 'process_resident_memory_bytes')
  } catch {
    // Busy or gone: /proc still tells the RSS.
  }
  return { heap, rss: Number.isFinite(rss) ? rss : procRss(s.bridge.pid) }
}

/** The largest heap and RSS seen while it runs: /metrics in turn, /proc every 100 ms. */
class Peak {
  heap = NaN
  rss = NaN
  private stopped = false
  private readonly loops: Array<Promise<void>>

  constructor (private readonly s: Stack) {
    this.loops = [this.scrape(), this.proc()]
  }

  private see (m: Mem): void {
    if (Number.isFinite(m.heap) && !(m.heap <= this.heap)) this.heap = m.heap
    if (Number.isFinite(m.rss) && !(m.rss <= this.rss)) this.rss = m.rss
  }

  private async scrape (): Promise<void> {
    while (!this.stopped) {
      this.see(await memOf(this.s))
      await sleep(250)
    }
  }

  private async proc (): Promise<void> {
    while (!this.stopped) {
      this.see({ heap: NaN, rss: procRss(this.s.bridge.pid) })
      await sleep(100)
    }
  }

  async end (): Promise<Mem> {
    this.stopped = true
    await Promise.all(this.loops)
    return { heap: this.heap, rss: this.rss }
  }
}

const mb = (bytes: number): string => fmt(bytes / 1_048_576, 0)

/** "heap 20 / 850 MB, RSS 100 / 900 MB (before / peak)" */
function memLine (points: Array<[string, Mem]>): string {
  const heap = points.map(([, m]) => mb(m.heap)).join(' / ')
  const rss = points.map(([, m]) => mb(m.rss)).join(' / ')
  return `heap ${heap} MB, RSS ${rss} MB (${points.map(([name]) => name).join(' / ')})`
}

async function readyz (s: Stack): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`${s.origin}/readyz`, { signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

async function emulatorCount (s: Stack, route: string): Promise<number> {
  const res = await fetch(`${s.emuOrigin}/operator/stats`)
  const stats = await res.json() as { requests: Record<string, number> }
  return stats.requests[route] ?? 0
}

/** Every matching upstream request answers `delayMs` later, for the rest of the scenario. */
async function delayRoute (s: Stack, route: string, delayMs: number): Promise<void> {
  const res = await fetch(`${s.emuOrigin}/operator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ route, kind: 'delay', delayMs, count: 'Infinity' })
  })
  if (!res.ok) throw new Error(`arming a delay on ${route}: ${res.status} ${await res.text()}`)
}

// ---------------------------------------------------------------- clients

interface Frame {
  type: string
  id?: string
  ok?: boolean
  error?: { code?: string }
  clientId?: string
  cid?: string
  ticket?: string
}

interface Outcome { outcome: string, ms: number }

let seq = 0
/** Request ids, unique for the whole run: a client's result cache is keyed by them. */
const nextId = (): string => `r${++seq}`

/** One welcomed socket: counts its events and matches results to requests. */
class Tab {
  events = 0
  closeCode: number | undefined
  closedAt: number | undefined
  private readonly waiting = new Map<string, (o: Frame) => void>()

  constructor (readonly ws: WebSocket, readonly welcome: Frame) {
    ws.on('message', (data: RawData) => { this.onFrame(data as Buffer) })
    ws.on('close', (code: number) => {
      this.closeCode = code
      this.closedAt = Date.now()
      for (const w of this.waiting.values()) w({ type: 'closed' })
      this.waiting.clear()
    })
  }

  get open (): boolean { return this.ws.readyState === WebSocket.OPEN }

  private onFrame (data: Buffer): void {
    // Events are counted without parsing them: some are 150 KB.
    if (data.subarray(0, 16).toString('latin1') === '{"type":"event",') {
      this.events++
      return
    }
    const f = JSON.parse(data.toString()) as Frame
    if (f.type === 'event') this.events++
    if (f.type !== 'result' || f.id === undefined) return
    const w = this.waiting.get(f.id)
    this.waiting.delete(f.id)
    w?.(f)
  }

  /** Sends a request and resolves with its outcome: 'ok', the error code, or 'closed'. */
  async request (fields: Record<string, unknown>): Promise<Outcome> {
    const id = nextId()
    const started = performance.now()
    const f = await new Promise<Frame>((resolve) => {
      if (!this.open) { resolve({ type: 'closed' }); return }
      this.waiting.set(id, resolve)
      this.ws.send(JSON.stringify({ ...fields, id }))
    })
    const outcome = f.type === 'result' ? (f.ok === true ? 'ok' : f.error?.code ?? 'error') : f.type
    return { outcome, ms: performance.now() - started }
  }

  /** The raw TCP socket under ws, to stop and start reading it. */
  get tcp (): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket
  }

  async close (): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return
    const closed = new Promise<void>((resolve) => { this.ws.once('close', () => { resolve() }) })
    this.ws.close()
    const timer = setTimeout(() => { this.ws.terminate() }, 2000)
    await closed
    clearTimeout(timer)
  }
}

type Hello =
  | { kind: 'welcome', tab: Tab }
  | { kind: 'closed', code: number }
  | { kind: 'refused', frame: string }
  | { kind: 'error', message: string }
  | { kind: 'timeout' }

/** Opens a socket and says hello; resolves with the welcome, or with how the bridge refused. */
async function hello (url: string, fields: Record<string, unknown>, timeoutMs = 15_000): Promise<Hello> {
  return await new Promise<Hello>((resolve) => {
    const ws = new WebSocket(url, PROTOCOL, { perMessageDeflate: false })
    let done = false
    const finish = (h: Hello): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      ws.off('message', onFirst)
      resolve(h)
    }
    const timer = setTimeout(() => { finish({ kind: 'timeout' }); ws.terminate() }, timeoutMs)
    // The Tab is made in the first frame's handler, so that no later frame is missed.
    const onFirst = (data: RawData): void => {
      const text = (data as Buffer).toString()
      const f = JSON.parse(text) as Frame
      if (f.type === 'welcome') finish({ kind: 'welcome', tab: new Tab(ws, f) })
      else { finish({ kind: 'refused', frame: text.slice(0, 120) }); ws.terminate() }
    }
    ws.on('message', onFirst)
    ws.once('open', () => { ws.send(JSON.stringify({ type: 'hello', ...fields })) })
    ws.once('close', (code: number) => { finish({ kind: 'closed', code }) })
    ws.on('error', (err: Error) => { finish({ kind: 'error', message: err.message }) })
  })
}

const describeHello = (h: Hello): string => {
  switch (h.kind) {
    case 'welcome': return 'welcomed'
    case 'closed': return `closed ${h.code}`
    case 'refused': return `refused: ${h.frame}`
    case 'error': return `error: ${h.message}`
    case 'timeout': return 'no answer'
  }
}

async function welcomed (url: string, fields: Record<string, unknown>): Promise<Tab> {
  const h = await hello(url, fields)
  if (h.kind !== 'welcome') throw new Error(`hello ${JSON.stringify({ ...fields, auth: undefined })}: ${describeHello(h)}`)
  return h.tab
}

/** One anonymous client with `n` sockets, each with its own cid. */
async function client (s: Stack, n: number, name = 'c'): Promise<Tab[]> {
  const first = await welcomed(s.ws, { cid: `${name}0` })
  const ticket = first.welcome.ticket
  if (ticket === undefined) throw new Error('the welcome carries no ticket')
  const rest = await Promise.all(Array.from({ length: n - 1 }, async (_, i) => await welcomed(s.ws, { auth: ticket, cid: `${name}${i + 1}` })))
  return [first, ...rest]
}

async function closeAll (tabs: Tab[]): Promise<void> {
  await Promise.all(tabs.map(async (t) => { await t.close() }))
}

/** Outcomes of requests fired without waiting for each. */
class Tally {
  sent = 0
  pending = 0
  readonly outcomes = new Map<string, number>()
  readonly ms: number[] = []

  track (p: Promise<Outcome>): void {
    this.sent++
    this.pending++
    void p.then((o) => {
      this.pending--
      this.outcomes.set(o.outcome, (this.outcomes.get(o.outcome) ?? 0) + 1)
      this.ms.push(o.ms)
    })
  }

  count (outcome: string): number { return this.outcomes.get(outcome) ?? 0 }

  async drain (timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs
    while (this.pending > 0 && Date.now() < until) await sleep(100)
  }

  /** "ok 4,790, RATE_LIMITED 10, unanswered 0" */
  summary (): string {
    const parts = [...this.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt(v, 0)}`)
    if (this.pending > 0) parts.push(`unanswered ${fmt(this.pending, 0)}`)
    return parts.length === 0 ? 'none' : parts.join(', ')
  }
}

/** Every socket sends `burst` requests at once, then `perSecond` a second, until stopped. */
function startPace (tabs: Tab[], perSecond: number, burst: number, frame: () => Record<string, unknown>, tally: Tally): { stop: () => void } {
  const timers = tabs.map((tab) => {
    for (let i = 0; i < burst; i++) tally.track(tab.request(frame()))
    return setInterval(() => { if (tab.open) tally.track(tab.request(frame())) }, 1000 / perSecond)
  })
  return { stop: () => { for (const t of timers) clearInterval(t) } }
}

async function pace (tabs: Tab[], perSecond: number, ms: number, burst: number, frame: () => Record<string, unknown>, tally: Tally): Promise<void> {
  const p = startPace(tabs, perSecond, burst, frame, tally)
  await sleep(ms)
  p.stop()
}

function closeCodes (tabs: Tab[]): string {
  const codes = new Map<string, number>()
  for (const t of tabs) {
    const k = t.closeCode === undefined ? 'open' : String(t.closeCode)
    codes.set(k, (codes.get(k) ?? 0) + 1)
  }
  return [...codes].map(([k, v]) => `${k}: ${v}`).join(', ')
}

const seconds = (ms: number): string => `${fmt(ms / 1000, 1)} s`

// ---------------------------------------------------------------- scenarios

const FEED_SENDS = 100
const FEED_IN_FLIGHT = 16

/** 32 sockets of one client, each its own cid and so its own feed; 100 sends of 49 KB, whose events reach every feed. */
async function feedBuffers (): Promise<string[]> {
  const s = await startStack()
  const tabs = await client(s, 32)
  const before = await memOf(s)
  const peak = new Peak(s)
  const started = Date.now()
  const tally = new Tally()
  // 16 in flight at most, round robin over the sockets: within any per-client send queue, so every send goes through.
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < FEED_SENDS) {
      const tab = tabs[next++ % tabs.length] as Tab
      const p = tab.request({ type: 'send', query: QUERY })
      tally.track(p)
      await p
    }
  }
  await Promise.all(Array.from({ length: FEED_IN_FLIGHT }, worker))
  const ok = tally.count('ok')
  // Each answered send makes a clientRequest and a botResponse event on every feed.
  const expected = tabs.length * 2 * ok
  const events = (): number => tabs.reduce((n, t) => n + t.events, 0)
  let last = -1
  let quietSince = Date.now()
  while (events() < expected && Date.now() - quietSince < 3000 && Date.now() - started < 90_000) {
    if (events() !== last) { last = events(); quietSince = Date.now() }
    await sleep(200)
  }
  const tookMs = Date.now() - started
  const atPeak = await peak.end()
  const delivered = events()
  const codes = closeCodes(tabs)
  await closeAll(tabs)
  await sleep(5000)
  const later = await memOf(s)
  return [
    `sends: ${tally.summary()}; events ${fmt(delivered, 0)} of ${fmt(expected, 0)} in ${seconds(tookMs)}; sockets ${codes}`,
    memLine([['before', before], ['peak', atPeak], ['5 s after close', later]])
  ]
}

/** 16 sockets of one client ask for a 60 KB state with fresh ids, 15 a second each, for 20 s. */
async function resultCache (): Promise<string[]> {
  const s = await startStack()
  const tabs = await client(s, 16)
  const set = await (tabs[0] as Tab).request({ type: 'setState', state: STATE })
  if (set.outcome !== 'ok') throw new Error(`setState: ${set.outcome}`)
  await sleep(1000)
  const before = await memOf(s)
  const peak = new Peak(s)
  const tally = new Tally()
  await pace(tabs, 15, 20_000, 0, () => ({ type: 'getState' }), tally)
  await tally.drain(10_000)
  const after = await memOf(s)
  const atPeak = await peak.end()
  const codes = closeCodes(tabs)
  await closeAll(tabs)
  await sleep(10_000)
  const quiet = await memOf(s)
  return [
    `getState: ${fmt(tally.sent, 0)} sent, ${tally.summary()}; sockets ${codes}`,
    memLine([['before', before], ['after', after], ['peak', atPeak], ['10 s quiet', quiet]])
  ]
}

/** One socket stops reading and keeps asking for a 60 KB state, 15 a second, for 20 s. */
async function neverReads (): Promise<string[]> {
  const s = await startStack()
  const [tab] = await client(s, 1)
  if (tab === undefined) throw new Error('no socket')
  const set = await tab.request({ type: 'setState', state: STATE })
  if (set.outcome !== 'ok') throw new Error(`setState: ${set.outcome}`)
  await sleep(500)
  const before = await memOf(s)
  const peak = new Peak(s)
  const started = Date.now()
  // The bridge's own view: its socket count falls to 0 when it lets go of the socket.
  let bridgeLetGoAt: number | undefined
  let watching = true
  const watch = (async () => {
    while (watching) {
      try {
        const r = await readyz(s)
        if (r.body.sockets === 0 && bridgeLetGoAt === undefined) bridgeLetGoAt = Date.now()
      } catch {
        // Busy: try again.
      }
      await sleep(250)
    }
  })()
  tab.tcp.pause()
  const tally = new Tally()
  await pace([tab], 15, 20_000, 0, () => ({ type: 'getState' }), tally)
  watching = false
  await watch
  const end = await memOf(s)
  const atPeak = await peak.end()
  const answeredBefore = tally.count('ok')
  tab.tcp.resume()
  const resumedAt = Date.now()
  while (tab.open && tally.pending > 0 && Date.now() - resumedAt < 5000) await sleep(100)
  const letGo = bridgeLetGoAt === undefined ? 'still held by the bridge after 20 s' : `let go by the bridge after ${seconds(bridgeLetGoAt - started)}`
  const closed = tab.closeCode === undefined ? 'open' : `closed ${tab.closeCode}`
  return [
    `${fmt(tally.sent, 0)} getState sent; socket ${letGo}; once read again: ${closed}, ${fmt(tally.count('ok') - answeredBefore, 0)} results came through, ${tally.summary()}`,
    `RSS +${mb(end.rss - before.rss)} MB, heap +${mb(end.heap - before.heap)} MB; ${memLine([['before', before], ['peak', atPeak], ['after 20 s', end]])}`
  ]
}

/** Sends answered 500 ms late: 16 sockets of one client send 49 KB queries as fast as allowed for 10 s, then leave. */
async function queuedSends (): Promise<string[]> {
  const s = await startStack()
  await delayRoute(s, 'send', 500)
  const tabs = await client(s, 16)
  const atStart = await emulatorCount(s, 'send')
  const peak = new Peak(s)
  const tally = new Tally()
  await pace(tabs, 19, 10_000, 30, () => ({ type: 'send', query: QUERY }), tally)
  const atClose = await emulatorCount(s, 'send')
  const answered = tally.summary()
  const codes = closeCodes(tabs)
  await closeAll(tabs)
  const closedAt = Date.now()
  await sleep(Math.max(0, 10_000 - (Date.now() - closedAt)))
  const later = await emulatorCount(s, 'send')
  const atPeak = await peak.end()
  return [
    `${fmt(tally.sent, 0)} sends in 10 s (by the close: ${answered}; sockets ${codes}); reached the emulator: ${fmt(atClose - atStart, 0)} in the 10 s, ${fmt(later - atClose, 0)} in the 10 s after the sockets closed`,
    `peak heap ${mb(atPeak.heap)} MB, RSS ${mb(atPeak.rss)} MB`
  ]
}

const LOCKOUT_CYCLES = 4000
const LOCKOUT_MAX_POLLS = 2000
const LOCKOUT_PARALLEL = 50

/** Anonymous hellos, each closed once answered; then a visitor tries to get in. */
async function lockout (): Promise<string[]> {
  const s = await startStack({ MAX_POLLS: String(LOCKOUT_MAX_POLLS) })
  const outcomes = new Map<string, number>()
  let next = 0
  const started = Date.now()
  const worker = async (): Promise<void> => {
    while (next < LOCKOUT_CYCLES) {
      next++
      const h = await hello(s.ws, {}, 10_000)
      const k = h.kind === 'welcome' ? 'welcomed' : h.kind === 'closed' ? `closed ${h.code}` : h.kind
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1)
      if (h.kind === 'welcome') await h.tab.close()
    }
  }
  await Promise.all(Array.from({ length: LOCKOUT_PARALLEL }, worker))
  const tookMs = Date.now() - started
  const visitor = await hello(s.ws, {}, 15_000)
  if (visitor.kind === 'welcome') await visitor.tab.close()
  let ready: string
  try {
    const r = await readyz(s)
    ready = `${r.status} ${JSON.stringify(r.body)}`
  } catch (err) {
    ready = `no answer (${(err as Error).message})`
  }
  const tally = [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')
  return [
    `${fmt(LOCKOUT_CYCLES, 0)} cycles (MAX_POLLS=${LOCKOUT_MAX_POLLS}, ${LOCKOUT_PARALLEL} at once) in ${seconds(tookMs)}: ${tally}`,
    `then a visitor: ${describeHello(visitor)}; /readyz ${ready}`
  ]
}

/** getState and sends answered 300 ms late: client A floods getState from 16 sockets, client B sends once a second. */
async function fairness (): Promise<string[]> {
  const s = await startStack()
  await delayRoute(s, 'getState', 300)
  await delayRoute(s, 'send', 300)
  const a = await client(s, 16, 'a')
  const [b] = await client(s, 1, 'b')
  if (b === undefined) throw new Error('no socket')
  const flood = new Tally()
  const p = startPace(a, 19, 30, () => ({ type: 'getState' }), flood)
  await sleep(1000)
  const sends = new Tally()
  const sentAt: number[] = []
  for (let i = 0; i < 10; i++) {
    sentAt.push(performance.now())
    sends.track(b.request({ type: 'send', query: `hello ${i}` }))
    await sleep(1000)
  }
  // A keeps flooding while B waits, 20 s at most.
  await sends.drain(20_000)
  p.stop()
  // A send still unanswered counts with its age so far, as a lower bound.
  const waited = performance.now()
  const ms = [...sends.ms, ...sentAt.slice(sends.ms.length).map((t) => waited - t)]
  const lat = summarize(ms)
  const bound = sends.pending > 0 ? '>= ' : ''
  const floodLat = summarize(flood.ms)
  return [
    `B's sends: ${sends.summary()}; latency p50 ${bound}${fmt(lat.p50, 0)} ms, max ${bound}${fmt(lat.max, 0)} ms`,
    `A's getState: ${fmt(flood.sent, 0)} sent, ${flood.summary()}; p50 of those answered ${fmt(floodLat.p50, 0)} ms`
  ]
}

const UPLOADS = 300
const UPLOAD_SENT = 256 * 1024

interface Upload { sock: Socket, written: boolean, closed: boolean, status: string | undefined, error: string | undefined }

/** Webhook calls with a wrong secret that promise 1 MiB and stall after 256 KB. */
async function webhookUploads (): Promise<string[]> {
  const s = await startStack({ WEBHOOK_SECRET })
  const before = await memOf(s)
  const head = `POST /v1/webhook/default/wrong-secret-0000000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    'Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n'
  const body = Buffer.alloc(UPLOAD_SENT, 'x')
  const uploads: Upload[] = Array.from({ length: UPLOADS }, () => {
    const sock = connect(s.port, '127.0.0.1')
    const u: Upload = { sock, written: false, closed: false, status: undefined, error: undefined }
    sock.on('data', (d: Buffer) => { u.status ??= /^HTTP\/1\.1 (\d+)/.exec(d.toString('latin1'))?.[1] ?? '?' })
    // A server that ends the connection ends it on this side too (end, then close).
    sock.on('end', () => { u.closed = true })
    sock.on('close', () => { u.closed = true })
    sock.on('error', (err: NodeJS.ErrnoException) => { u.error = err.code ?? err.message })
    sock.write(head)
    sock.write(body, () => { u.written = true })
    return u
  })
  const started = Date.now()
  while (uploads.some((u) => !u.written && !u.closed) && Date.now() - started < 20_000) await sleep(100)
  const writtenAt = Date.now()
  await sleep(2000)
  const after = await memOf(s)
  await sleep(writtenAt + 15_000 - Date.now())
  const held = uploads.filter((u) => !u.closed).length
  const end = await memOf(s)
  const statuses = new Map<string, number>()
  for (const u of uploads) {
    const k = u.status ?? (u.error !== undefined ? u.error : 'no answer')
    statuses.set(k, (statuses.get(k) ?? 0) + 1)
  }
  for (const u of uploads) u.sock.destroy()
  return [
    `${UPLOADS} uploads of 256 KB (of 1 MiB promised), written in ${seconds(writtenAt - started)}: ${uploads.filter((u) => u.written).length} fully written; still held open after 15 s: ${held}; answers: ${[...statuses].map(([k, v]) => `${k} ${v}`).join(', ')}`,
    memLine([['before', before], ['2 s after writing', after], ['15 s after', end]])
  ]
}

// ---------------------------------------------------------------- run

const scenarios: Array<{ name: string, run: () => Promise<string[]> }> = [
  { name: 'feed-buffers', run: feedBuffers },
  { name: 'result-cache', run: resultCache },
  { name: 'never-reads', run: neverReads },
  { name: 'queued-sends', run: queuedSends },
  { name: 'lockout', run: lockout },
  { name: 'fairness', run: fairness },
  { name: 'webhook-uploads', run: webhookUploads }
]

process.once('SIGINT', () => {
  log('interrupted; stopping the processes')
  void stopAll().then(() => process.exit(130))
})

const unknown = only?.filter((n) => !scenarios.some((s) => s.name === n)) ?? []
if (unknown.length > 0) {
  process.stderr.write(`unknown scenarios: ${unknown.join(', ')} (known: ${scenarios.map((s) => s.name).join(', ')})\n`)
  process.exit(2)
}

log(`bridge and emulator from ${dist}`)
const rows: Array<[string, string[]]> = []
const runStarted = Date.now()
for (const sc of scenarios) {
  if (only !== undefined && !only.includes(sc.name)) continue
  log(`${sc.name}: starting`)
  const t0 = Date.now()
  let lines: string[]
  try {
    lines = await sc.run()
  } catch (err) {
    lines = [`failed: ${(err as Error).stack ?? String(err)}`.split('\n').slice(0, 3).join(' | ')]
  }
  if (current?.exited !== undefined) lines.push(`the bridge exited during the scenario (${current.exited})`)
  current = undefined
  await stopAll()
  rows.push([sc.name, lines])
  log(`${sc.name} (${seconds(Date.now() - t0)}):\n  ${lines.join('\n  ')}`)
}

const width = Math.max('scenario'.length, ...rows.map(([n]) => n.length))
const out = [`${'scenario'.padEnd(width)}  figures`, `${'-'.repeat(width)}  ${'-'.repeat(7)}`]
for (const [name, lines] of rows) lines.forEach((l, i) => out.push(`${(i === 0 ? name : '').padEnd(width)}  ${l}`))
process.stdout.write(`\n${dist}, ${seconds(Date.now() - runStarted)}\n${out.join('\n')}\n`)
