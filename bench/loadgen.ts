/**
 * The load generator: a child process the harness drives over IPC. It plays
 * the clients, either WebSocket clients of the bridge (or of the bare ws
 * server) or front ends long-polling the emulator directly, publishes events
 * through the emulator's operator route, sends requests, and measures what
 * the clients see. Publisher and receivers share this process's clock, so an
 * event's latency is exact: the time in its body against the time it lands.
 */
import type { Socket } from 'node:net'
import { Client, Pool, buildConnector, type Dispatcher } from 'undici'
import WebSocket from 'ws'

export type Command =
  | { cmd: 'connect', url: string, clients: number, tabs: number, shareCid: boolean, deflate?: Deflate }
  | { cmd: 'poll', origin: string, token: string, clients: number, tabs: number }
  | { cmd: 'publish', origin: string, token: string, rate: number, seconds: number, concurrency: number, bodyBytes?: number, kind?: 'ws' | 'direct', shape?: Shape, each?: boolean }
  | { cmd: 'requests', mode: 'ws' | 'direct', origin?: string, token?: string, rate: number, seconds: number, concurrency: number }
  | { cmd: 'measure' }
  | { cmd: 'collect' }
  | { cmd: 'stopPolls' }
  | { cmd: 'disconnect' }
  | { cmd: 'sample' }

/**
 * Whether the WebSocket clients offer permessage-deflate: not at all (the
 * default), as ws offers it (its own frames under 1 KB go uncompressed once
 * the bridge asks for no client context takeover), or compressing every frame
 * they send, as Chrome does, so the bridge inflates them.
 */
export type Deflate = 'offer' | 'compress'

/**
 * What a published event carries: a timestamp only (the default), a bot
 * answer with text replies and buttons (1-2 KB of JSON in its frame, the
 * texts drawn at random so that no two answers are alike), or a client's
 * short request (about 200 bytes).
 */
export type Shape = 'stamp' | 'botAnswer' | 'small'

/** What one kind of client saw: the bridge's WebSocket clients, or the front ends polling the emulator directly. */
export interface Side {
  latencies: number[]
  roundTrips: number[]
  events: number
  results: number
  /** Bytes read and written on these clients' sockets. */
  bytes: number
  /** Bytes of the event frames as the WebSocket clients got them: decompressed, when they were compressed. */
  textBytes: number
}

export interface Collected extends Side {
  /** The last frame a socket received, as text. */
  lastFrame: string
  frames: number
  seconds: number
  errors: number
  /** The same, by kind of client (the fields above add both up). */
  ws: Side
  direct: Side
}

const newSide = (): Side => ({ latencies: [], roundTrips: [], events: 0, results: 0, bytes: 0, textBytes: 0 })

const now = (): number => performance.timeOrigin + performance.now()

/** One addressable target of a publish: what the upstream calls a client, and how it listens. */
interface Target { clientId: string, kind: 'ws' | 'direct' }

interface WsClient { ws: WebSocket, clientId: string, cid: string, tab: number, pending: Map<string, { at: number, done: () => void }> }

interface Poller { clientId: string, cid: string, client: Client, socket: Socket | undefined }

class LoadGen {
  private sockets: WsClient[] = []
  private pollers: Poller[] = []
  private targets: Target[] = []
  private polling = false
  private parse = true
  private ws = newSide()
  private direct = newSide()
  private frames = 0
  private errors = 0
  private since = now()
  private bytesAtStart = { ws: 0, direct: 0 }
  private nextId = 0
  private lastFrame: Buffer | undefined

  async handle (c: Command): Promise<unknown> {
    switch (c.cmd) {
      case 'connect': return await this.connect(c.url, c.clients, c.tabs, c.shareCid, c.deflate)
      case 'poll': return await this.poll(c.origin, c.token, c.clients, c.tabs)
      case 'publish': return await this.publish(c)
      case 'requests': return await this.requests(c)
      case 'measure': return this.measure()
      case 'collect': return this.collect()
      case 'sample': return this.sample()
      case 'stopPolls': return await this.stopPolls()
      case 'disconnect': return await this.disconnect()
    }
  }

  /** `clients` clients with `tabs` sockets each; tabs of a client share its cid when shareCid. */
  private async connect (url: string, clients: number, tabs: number, shareCid: boolean, deflate?: Deflate): Promise<{ sockets: number, targets: number, deflated: number }> {
    let i = 0
    const one = async (): Promise<void> => {
      while (i < clients) {
        i++
        const first = await this.open(url, {}, 0, deflate)
        this.targets.push({ clientId: first.clientId, kind: 'ws' })
        for (let t = 1; t < tabs; t++) await this.open(url, { auth: first.ticket, ...(shareCid ? { cid: first.cid } : {}) }, t, deflate)
      }
    }
    await Promise.all(Array.from({ length: 64 }, one))
    // First tabs first: requests taken in this order go to different clients, whose sends the bridge runs in parallel.
    this.sockets.sort((a, b) => a.tab - b.tab)
    const deflated = this.sockets.filter((s) => s.ws.extensions.includes('permessage-deflate')).length
    return { sockets: this.sockets.length, targets: this.targets.length, deflated }
  }

  private async open (url: string, hello: Record<string, unknown>, tab: number, deflate?: Deflate): Promise<{ clientId: string, cid: string, ticket: string }> {
    const perMessageDeflate = deflate === undefined ? false : deflate === 'offer' ? true : { threshold: 0 }
    const ws = new WebSocket(url, 'chatapi-bridge.v1', { perMessageDeflate })
    const welcome = await new Promise<Record<string, string>>((resolve, reject) => {
      ws.once('error', reject)
      ws.once('open', () => { ws.send(JSON.stringify({ type: 'hello', ...hello })) })
      ws.once('message', (data) => {
        const f = JSON.parse(String(data)) as Record<string, string>
        if (f.type === 'welcome') resolve(f)
        else reject(new Error(`expected welcome, got ${String(data).slice(0, 200)}`))
      })
    })
    const client: WsClient = { ws, clientId: welcome.clientId as string, cid: welcome.cid as string, tab, pending: new Map() }
    ws.on('error', () => { this.errors++ })
    ws.on('message', (data) => { this.onFrame(client, data as Buffer) })
    this.sockets.push(client)
    return { clientId: client.clientId, cid: client.cid, ticket: welcome.ticket as string }
  }

  private onFrame (client: WsClient, data: Buffer): void {
    this.frames++
    this.lastFrame = data
    if (!this.parse) return
    const f = JSON.parse(data.toString()) as { type: string, id?: string, event?: { event?: { sentAt?: number } } }
    if (f.type === 'event') {
      this.ws.events++
      this.ws.textBytes += data.length
      const sentAt = f.event?.event?.sentAt
      if (typeof sentAt === 'number') this.ws.latencies.push(now() - sentAt)
    } else if (f.type === 'result' && f.id !== undefined) {
      const waiting = client.pending.get(f.id)
      if (waiting !== undefined) {
        client.pending.delete(f.id)
        this.ws.results++
        this.ws.roundTrips.push(now() - waiting.at)
        waiting.done()
      }
    }
  }

  /** Front ends without the bridge: one long poll per tab, each over its own HTTP/1.1 connection. */
  private async poll (origin: string, token: string, clients: number, tabs: number): Promise<{ pollers: number }> {
    this.polling = true
    for (let c = 0; c < clients; c++) {
      const clientId = `direct-${process.pid}-${c}`
      this.targets.push({ clientId, kind: 'direct' })
      for (let t = 0; t < tabs; t++) {
        const poller: Poller = { clientId, cid: `tab-${t}`, client: undefined as unknown as Client, socket: undefined }
        const connect = buildConnector({})
        poller.client = new Client(origin, {
          keepAliveTimeout: 120_000,
          headersTimeout: 120_000,
          bodyTimeout: 120_000,
          connect: (opts, cb) => connect(opts, (err, socket) => {
            if (err === null) poller.socket = socket as Socket
            if (err !== null) cb(err, null)
            else cb(null, socket)
          })
        })
        this.pollers.push(poller)
        void this.pollLoop(poller, token)
      }
    }
    return { pollers: this.pollers.length }
  }

  private async pollLoop (p: Poller, token: string): Promise<void> {
    const path = `/chatapi/${token}/events?clientId=${encodeURIComponent(p.clientId)}&cid=${encodeURIComponent(p.cid)}&all=true`
    while (this.polling) {
      try {
        const res = await p.client.request({ method: 'GET', path })
        const text = await res.body.text()
        if (res.statusCode !== 200) { this.errors++; continue }
        this.frames++
        if (!this.parse) continue
        const body = JSON.parse(text) as { events: Array<{ event?: { sentAt?: number } }> }
        const at = now()
        for (const e of body.events) {
          this.direct.events++
          const sentAt = e.event?.sentAt
          if (typeof sentAt === 'number') this.direct.latencies.push(at - sentAt)
        }
      } catch {
        if (!this.polling) return
        this.errors++
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }

  /**
   * Publishes events to random targets through the emulator's operator
   * route: at `rate` per second (open loop), or as fast as `concurrency`
   * requests in flight allow when rate is 0; with `each`, one event to every
   * target instead, in turn.
   */
  private async publish (c: Extract<Command, { cmd: 'publish' }>): Promise<{ published: number, seconds: number }> {
    const pool = new Pool(c.origin, { connections: c.concurrency, pipelining: 1 })
    const pad = c.bodyBytes === undefined ? undefined : 'x'.repeat(c.bodyBytes)
    let published = 0
    const started = now()
    const end = started + c.seconds * 1000
    const targets = c.kind === undefined ? this.targets : this.targets.filter((t) => t.kind === c.kind)
    let turn = 0
    const one = async (): Promise<void> => {
      const target = (c.each === true ? targets[turn++] : targets[Math.floor(Math.random() * targets.length)]) as Target
      const stamp = pad === undefined ? { sentAt: now() } : { sentAt: now(), pad }
      const body = JSON.stringify({ clientId: target.clientId, ...eventOf(c.shape ?? 'stamp', target.clientId, stamp) })
      try {
        const res = await pool.request({ method: 'POST', path: `/operator/${c.token}/publish`, headers: { 'content-type': 'application/json' }, body })
        await res.body.dump()
        if (res.statusCode === 200) published++
        else this.errors++
      } catch {
        this.errors++
      }
    }
    if (c.each === true) {
      await Promise.all(Array.from({ length: c.concurrency }, async () => {
        while (turn < targets.length) await one()
      }))
    } else {
      await paced(c.rate, c.concurrency, end, one)
    }
    await pool.close()
    return { published, seconds: (now() - started) / 1000 }
  }

  /** Request round trips: `send` over the sockets, or a direct POST to the emulator. */
  private async requests (c: Extract<Command, { cmd: 'requests' }>): Promise<{ sent: number, seconds: number }> {
    let sent = 0
    const started = now()
    const end = started + c.seconds * 1000
    let pool: Dispatcher | undefined
    if (c.mode !== 'ws') pool = new Pool(c.origin as string, { connections: c.concurrency, pipelining: 1 })
    const directTargets = this.targets.filter((t) => t.kind === 'direct')
    let turn = 0
    const viaWs = async (): Promise<void> => {
      // Round robin over the sockets, so that no client's lane of sends is busy with an earlier one.
      const client = this.sockets[turn++ % this.sockets.length] as WsClient
      const id = String(++this.nextId)
      await new Promise<void>((resolve) => {
        client.pending.set(id, { at: now(), done: resolve })
        client.ws.send(`{"type":"send","id":"${id}","query":"hi"}`)
      })
    }
    const direct = async (): Promise<void> => {
      const target = directTargets[turn++ % directTargets.length] as Target
      const t0 = now()
      try {
        const res = await (pool as Dispatcher).request({
          method: 'POST',
          path: `/chatapi/${c.token as string}`,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ clientId: target.clientId, query: 'hi' })
        })
        await res.body.text()
        this.direct.results++
        this.direct.roundTrips.push(now() - t0)
      } catch {
        this.errors++
      }
    }
    const one = async (): Promise<void> => {
      sent++
      await (c.mode === 'ws' ? viaWs() : direct())
    }
    await paced(c.rate, c.concurrency, end, one)
    await pool?.close()
    return { sent, seconds: (now() - started) / 1000 }
  }

  /** Starts a measurement window: samples and counters from zero. */
  private measure (): { ok: true } {
    this.ws = newSide()
    this.direct = newSide()
    this.frames = 0
    this.errors = 0
    this.since = now()
    this.bytesAtStart = this.wireBytes()
    return { ok: true }
  }

  private collect (): Collected {
    const bytes = this.wireBytes()
    const ws = { ...this.ws, bytes: bytes.ws - this.bytesAtStart.ws }
    const direct = { ...this.direct, bytes: bytes.direct - this.bytesAtStart.direct }
    return {
      lastFrame: this.lastFrame?.toString() ?? '',
      latencies: [...ws.latencies, ...direct.latencies],
      roundTrips: [...ws.roundTrips, ...direct.roundTrips],
      events: ws.events + direct.events,
      results: ws.results + direct.results,
      textBytes: ws.textBytes + direct.textBytes,
      bytes: ws.bytes + direct.bytes,
      frames: this.frames,
      seconds: (now() - this.since) / 1000,
      errors: this.errors,
      ws,
      direct
    }
  }

  /** Counters only, without the samples (cheap, for progress). */
  private sample (): { frames: number, events: number, sockets: number, pollers: number } {
    return { frames: this.frames, events: this.ws.events + this.direct.events, sockets: this.sockets.length, pollers: this.pollers.length }
  }

  /** Bytes read and written on the client sockets, by kind: what the clients' wire carried. */
  private wireBytes (): { ws: number, direct: number } {
    let ws = 0
    let direct = 0
    for (const s of this.sockets) {
      const raw = (s.ws as unknown as { _socket?: Socket })._socket
      if (raw !== undefined) ws += raw.bytesRead + raw.bytesWritten
    }
    for (const p of this.pollers) if (p.socket !== undefined) direct += p.socket.bytesRead + p.socket.bytesWritten
    return { ws, direct }
  }

  private async stopPolls (): Promise<{ ok: true }> {
    this.polling = false
    await Promise.all(this.pollers.map(async (p) => { await p.client.destroy() }))
    this.pollers = []
    this.targets = this.targets.filter((t) => t.kind !== 'direct')
    return { ok: true }
  }

  private async disconnect (): Promise<{ ok: true }> {
    for (const s of this.sockets) s.ws.terminate()
    this.sockets = []
    this.targets = this.targets.filter((t) => t.kind !== 'ws')
    return { ok: true }
  }

  /** Frames are parsed (for latencies) unless only counted; set by the harness through the environment of a phase. */
  setParse (on: boolean): void { this.parse = on }
}

const SENTENCES = [
  'Your order left our warehouse yesterday and should arrive within two working days.',
  'You can follow the parcel on the carrier\'s site, or I can text you when it is out for delivery.',
  'Refunds reach your card within five to seven working days after we receive the return.',
  'Our support team is available from 8 am to 8 pm on weekdays and from 10 am to 4 pm on Saturdays.',
  'I have found three stores near you that have this model in stock today.',
  'The premium plan includes unlimited calls, 50 GB of data and free roaming in the EU.',
  'To reset your password, open the sign-in page and choose "Forgot password".',
  'Your appointment is confirmed for Thursday at 10:30. We will send a reminder the day before.',
  'Sorry, I did not quite get that. Could you say it in other words?',
  'The invoice for March is ready: the total is 42.90 EUR, due on the 15th.',
  'Delivery to your area is free for orders over 30 EUR; below that it costs 4.90 EUR.',
  'You can change the delivery address until the parcel leaves the warehouse.'
]
const BUTTONS = ['Track the parcel', 'Text me on delivery', 'Change the address', 'Talk to an agent', 'Opening hours', 'Return an item', 'My invoices', 'Main menu', 'Yes', 'No, thanks']

const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)] as T
let questions = 0

/** The type and body of a published event of `shape`, with the latency `stamp`. */
function eventOf (shape: Shape, clientId: string, stamp: Record<string, unknown>): { type: string, body: Record<string, unknown> } {
  const questionId = `${process.pid}-${++questions}-${Math.random().toString(36).slice(2, 10)}`
  if (shape === 'stamp') return { type: 'benchEvent', body: stamp }
  if (shape === 'small') return { type: 'clientRequest', body: { questionId, query: pick(['hi', 'where is my order?', 'opening hours', 'talk to an agent']), ...stamp } }
  const state = pick(['/Orders/Status', '/Support/Hours', '/Billing/Invoice', '/Stores/Nearby'])
  const texts = Array.from({ length: 2 + Math.floor(Math.random() * 2) }, () => pick(SENTENCES))
  const replies: Array<Record<string, unknown>> = texts.map((text, i) =>
    i === 0 ? { type: 'text', text, markup: `<b>${text.slice(0, 30)}</b>${text.slice(30)}`, state } : { type: 'text', text, state })
  replies.push({ type: 'buttons', buttons: Array.from({ length: 2 + Math.floor(Math.random() * 3) }, () => ({ text: pick(BUTTONS) })), state })
  if (Math.random() < 0.5) replies.push({ type: 'inlineButtons', buttons: [{ text: 'Details', url: `https://shop.example.com/help/${questionId}` }], state })
  const data = { nlpClass: state, confidence: Math.round(Math.random() * 100) / 100, replies, answer: texts.join('\n\n'), newSessionStarted: false, endSession: false, debugData: [] }
  return { type: 'botResponse', body: { questionId, clientId, data, ...stamp } }
}

/** Runs `one` until `end`: at `rate` starts per second with at most `concurrency` in flight, or back to back when rate is 0. */
async function paced (rate: number, concurrency: number, end: number, one: () => Promise<void>): Promise<void> {
  if (rate <= 0) {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (now() < end) await one()
    }))
    return
  }
  const inFlight = new Set<Promise<void>>()
  const started = now()
  let issued = 0
  while (now() < end) {
    const due = Math.floor(((now() - started) / 1000) * rate)
    while (issued < due && inFlight.size < concurrency) {
      issued++
      const p = one().finally(() => inFlight.delete(p))
      inFlight.add(p)
    }
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  await Promise.all(inFlight)
}

const gen = new LoadGen()
process.on('message', (msg: { id: number, command: Command & { parse?: boolean } }) => {
  if (msg.command.parse !== undefined) gen.setParse(msg.command.parse)
  gen.handle(msg.command).then(
    (result) => { process.send?.({ id: msg.id, result }) },
    (err: unknown) => { process.send?.({ id: msg.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }) }
  )
})
process.on('disconnect', () => { process.exit(0) })
process.send?.({ ready: true })
