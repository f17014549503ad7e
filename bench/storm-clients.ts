/**
 * The clients and the publisher of the storm scenario, a child process that
 * storm.ts drives over IPC (as it does loadgen.ts). Each client is one
 * socket with its own clientId (ticket) and cid, and reconnects as the SDK
 * does (packages/client: full jitter below min(30 s, 500 ms * 2^attempt),
 * the attempt counted from 0 after a welcomed socket closes, up by one per
 * attempt that fails) with its ticket, its cid and the cursor of the last
 * event it had. The publisher sends every client events through the
 * emulator's operator route, each with the client's next sequence number,
 * so that what a client misses or gets twice is counted exactly.
 */
import { Pool } from 'undici'
import WebSocket from 'ws'

export type StormCommand =
  | { cmd: 'connect', url: string, clients: number }
  | { cmd: 'retarget', url: string }
  | { cmd: 'publishEach', origin: string, token: string }
  | { cmd: 'startPublishing', origin: string, token: string, rate: number }
  | { cmd: 'stopPublishing' }
  | { cmd: 'mark' }
  | { cmd: 'drop' }
  | { cmd: 'status' }
  | { cmd: 'storm' }
  | { cmd: 'settle', origin: string, token: string, timeoutMs: number }
  | { cmd: 'close' }

/** How a client's storm went: its first welcome after the mark. */
export interface StormClient {
  /** ms from the mark to the welcome; NaN when none came. */
  welcomeMs: number
  /** ms from the hello of the attempt that was welcomed to its welcome. */
  helloToWelcomeMs: number
  resumed: boolean | undefined
  gap: string | undefined
  /** Attempts that failed before it (refused, 503, closed before a welcome). */
  failedAttempts: number
  /** ms from the mark to the close of its socket (by the server, or by the drop). */
  closedMs: number
  closeCode: number | undefined
}

export interface StormStatus {
  clients: number
  /** Welcomed since the mark. */
  welcomed: number
  resumedTrue: number
  resumedFalse: number
  open: number
  /** ms from the mark to now. */
  sinceMarkMs: number
  markedAt: number
}

export interface Settled {
  clients: number
  /** Publishes answered 200 (events that must arrive). */
  published: number
  publishFailed: number
  /** Published (200) and never received, after the final event reached every client that got it. */
  lost: number
  /** Received more than once. */
  doubled: number
  /** Received with a lower sequence number than one received before. */
  outOfOrder: number
  /** Received although the publish did not answer 200 (the emulator stored it anyway). */
  receivedUnconfirmed: number
  /** Clients that did not get their final event within the timeout. */
  unsettled: number
  /** Clients with at least one event lost. */
  clientsWithLoss: number
  settleMs: number
  reconnects: number
}

const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 30_000
/** An attempt with no welcome after this long is given up (the bridge waits at most 15 s for the upstream). */
const WELCOME_TIMEOUT_MS = 30_000

interface Client {
  i: number
  cid: string
  clientId: string
  ticket: string | undefined
  cursor: string | undefined
  ws: WebSocket | undefined
  welcomed: boolean
  attempt: number
  helloAt: number
  /** Sequence numbers: the next to publish, those received, those whose publish failed. */
  nextSeq: number
  got: Set<number>
  failed: Set<number>
  lastSeq: number
  doubled: number
  outOfOrder: number
  storm: StormClient
  timer: NodeJS.Timeout | undefined
}

const newStorm = (): StormClient => ({ welcomeMs: NaN, helloToWelcomeMs: NaN, resumed: undefined, gap: undefined, failedAttempts: 0, closedMs: NaN, closeCode: undefined })

class StormClients {
  private url = ''
  private clients: Client[] = []
  private markedAt = Date.now()
  private stopping = false
  private publishing: Promise<void> | undefined
  private publishOn = false
  private reconnects = 0
  private firstWelcome = new Map<Client, (ok: boolean) => void>()

  async handle (c: StormCommand): Promise<unknown> {
    switch (c.cmd) {
      case 'connect': return await this.connect(c.url, c.clients)
      case 'retarget': this.url = c.url; return { ok: true }
      case 'publishEach': return await this.publishEach(c.origin, c.token)
      case 'startPublishing': this.startPublishing(c.origin, c.token, c.rate); return { ok: true }
      case 'stopPublishing': await this.stopPublishing(); return { ok: true }
      case 'mark': return this.mark()
      case 'drop': return this.drop()
      case 'status': return this.status()
      case 'storm': return this.clients.map((x) => x.storm)
      case 'settle': return await this.settle(c.origin, c.token, c.timeoutMs)
      case 'close': return this.close()
    }
  }

  /** `n` new clients, 64 connecting at a time; resolves once all are welcomed. */
  private async connect (url: string, n: number): Promise<{ clients: number, seconds: number }> {
    this.url = url
    const started = Date.now()
    const base = this.clients.length
    for (let i = 0; i < n; i++) {
      this.clients.push({
        i: base + i, cid: `storm-${process.pid}-${base + i}`, clientId: '', ticket: undefined, cursor: undefined, ws: undefined, welcomed: false, attempt: 0, helloAt: 0,
        nextSeq: 0, got: new Set(), failed: new Set(), lastSeq: 0, doubled: 0, outOfOrder: 0, storm: newStorm(), timer: undefined
      })
    }
    let next = base
    const one = async (): Promise<void> => {
      while (next < this.clients.length) {
        const c = this.clients[next++] as Client
        await new Promise<boolean>((resolve) => {
          this.firstWelcome.set(c, resolve)
          this.open(c)
        })
      }
    }
    await Promise.all(Array.from({ length: 64 }, one))
    return { clients: this.clients.length, seconds: (Date.now() - started) / 1000 }
  }

  private open (c: Client): void {
    c.timer = undefined
    if (this.stopping) return
    const ws = new WebSocket(this.url, 'chatapi-bridge.v1', { perMessageDeflate: false })
    c.ws = ws
    c.welcomed = false
    const giveUp = setTimeout(() => { if (!c.welcomed) ws.terminate() }, WELCOME_TIMEOUT_MS)
    ws.on('open', () => {
      c.helloAt = Date.now()
      const hello: Record<string, unknown> = { type: 'hello', cid: c.cid }
      if (c.ticket !== undefined) hello.auth = c.ticket
      if (c.cursor !== undefined) hello.resume = c.cursor
      ws.send(JSON.stringify(hello))
    })
    ws.on('message', (data) => { this.onFrame(c, data as Buffer) })
    // A refused connection, a 503 while the old process drains: 'close' follows and retries.
    ws.on('error', () => {})
    ws.on('close', (code) => {
      clearTimeout(giveUp)
      if (c.ws !== ws) return
      c.ws = undefined
      const wasWelcomed = c.welcomed
      c.welcomed = false
      if (wasWelcomed) {
        c.attempt = 0
        if (Number.isNaN(c.storm.closedMs) && Date.now() >= this.markedAt) {
          c.storm.closedMs = Date.now() - this.markedAt
          c.storm.closeCode = code
        }
      } else if (Number.isNaN(c.storm.welcomeMs)) {
        c.storm.failedAttempts++
      }
      if (this.stopping) return
      const delay = Math.floor(Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(c.attempt, 30)))
      c.attempt++
      this.reconnects++
      c.timer = setTimeout(() => { this.open(c) }, delay)
    })
  }

  private onFrame (c: Client, data: Buffer): void {
    const f = JSON.parse(data.toString()) as { type: string, cursor?: string, clientId?: string, ticket?: string, resumed?: boolean, gap?: { reason?: string }, event?: { event?: { seq?: number } } }
    if (f.type === 'event') {
      if (f.cursor !== undefined) c.cursor = f.cursor
      const seq = f.event?.event?.seq
      if (typeof seq !== 'number') return
      if (c.got.has(seq)) c.doubled++
      else c.got.add(seq)
      if (seq < c.lastSeq) c.outOfOrder++
      else c.lastSeq = seq
      return
    }
    if (f.type === 'welcome') {
      c.welcomed = true
      c.attempt = 0
      c.clientId = f.clientId ?? c.clientId
      if (f.ticket !== undefined) c.ticket = f.ticket
      const now = Date.now()
      if (Number.isNaN(c.storm.welcomeMs) && now >= this.markedAt) {
        c.storm.welcomeMs = now - this.markedAt
        c.storm.helloToWelcomeMs = now - c.helloAt
        c.storm.resumed = f.resumed === true
        c.storm.gap = f.gap?.reason
      }
      const first = this.firstWelcome.get(c)
      if (first !== undefined) {
        this.firstWelcome.delete(c)
        first(true)
      }
    }
  }

  /** From now on, each client's next welcome and close count for the storm. */
  private mark (): { markedAt: number } {
    this.markedAt = Date.now()
    for (const c of this.clients) c.storm = newStorm()
    return { markedAt: this.markedAt }
  }

  /** A network cut: every socket terminated at once; each client reconnects after [0, 500 ms), then with backoff. */
  private drop (): { markedAt: number } {
    const marked = this.mark()
    for (const c of this.clients) c.ws?.terminate()
    return marked
  }

  private status (): StormStatus {
    let welcomed = 0
    let resumedTrue = 0
    let resumedFalse = 0
    let open = 0
    for (const c of this.clients) {
      if (c.welcomed) open++
      if (Number.isNaN(c.storm.welcomeMs)) continue
      welcomed++
      if (c.storm.resumed === true) resumedTrue++
      else resumedFalse++
    }
    return { clients: this.clients.length, welcomed, resumedTrue, resumedFalse, open, sinceMarkMs: Date.now() - this.markedAt, markedAt: this.markedAt }
  }

  private async publishOne (pool: Pool, token: string, c: Client): Promise<number> {
    const seq = ++c.nextSeq
    const body = JSON.stringify({ clientId: c.clientId, type: 'stormEvent', body: { seq, sentAt: Date.now() } })
    try {
      const res = await pool.request({ method: 'POST', path: `/operator/${token}/publish`, headers: { 'content-type': 'application/json' }, body })
      await res.body.dump()
      if (res.statusCode !== 200) c.failed.add(seq)
    } catch {
      c.failed.add(seq)
    }
    return seq
  }

  /** One event to every client, 32 at a time; resolves when every client has it (or 30 s passed). */
  private async publishEach (origin: string, token: string): Promise<{ published: number, missing: number, seconds: number }> {
    const started = Date.now()
    const sent = await this.oneToEach(origin, token, 30_000)
    return { ...sent, seconds: (Date.now() - started) / 1000 }
  }

  /** Publishes one event to every client, 32 at a time, then waits until each has its event (or `timeoutMs` passed). */
  private async oneToEach (origin: string, token: string, timeoutMs: number): Promise<{ published: number, missing: number }> {
    const pool = new Pool(origin, { connections: 32, pipelining: 1 })
    const want = new Map<Client, number>()
    let next = 0
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < this.clients.length) {
        const c = this.clients[next++] as Client
        want.set(c, await this.publishOne(pool, token, c))
      }
    }))
    await pool.close()
    const missing = (): number => [...want].filter(([c, seq]) => !c.got.has(seq) && !c.failed.has(seq)).length
    const deadline = Date.now() + timeoutMs
    while (missing() > 0 && Date.now() < deadline) await sleep(100)
    return { published: want.size, missing: missing() }
  }

  /** Events round robin over the clients, `rate` a second in all (at most 32 publishes in flight), until stopped. */
  private startPublishing (origin: string, token: string, rate: number): void {
    if (this.publishing !== undefined) return
    this.publishOn = true
    const pool = new Pool(origin, { connections: 32, pipelining: 1 })
    const inFlight = new Set<Promise<unknown>>()
    let turn = 0
    const run = async (): Promise<void> => {
      const started = Date.now()
      let issued = 0
      while (this.publishOn) {
        const due = Math.floor(((Date.now() - started) / 1000) * rate)
        while (issued < due && inFlight.size < 32) {
          issued++
          const c = this.clients[turn++ % this.clients.length] as Client
          const p = this.publishOne(pool, token, c).finally(() => inFlight.delete(p))
          inFlight.add(p)
        }
        // Behind by more than a second (a busy machine): the rate is a ceiling, not a debt.
        if (due - issued > rate) issued = due - rate
        await sleep(5)
      }
      await Promise.all(inFlight)
      await pool.close()
    }
    this.publishing = run()
  }

  private async stopPublishing (): Promise<void> {
    this.publishOn = false
    await this.publishing
    this.publishing = undefined
  }

  /** Stops the publisher, sends every client a last event, waits for all of them (or the timeout), then counts. */
  private async settle (origin: string, token: string, timeoutMs: number): Promise<Settled> {
    await this.stopPublishing()
    const started = Date.now()
    const { missing } = await this.oneToEach(origin, token, timeoutMs)
    const out: Settled = { clients: this.clients.length, published: 0, publishFailed: 0, lost: 0, doubled: 0, outOfOrder: 0, receivedUnconfirmed: 0, unsettled: missing, clientsWithLoss: 0, settleMs: Date.now() - started, reconnects: this.reconnects }
    for (const c of this.clients) {
      let lost = 0
      for (let s = 1; s <= c.nextSeq; s++) {
        if (c.failed.has(s)) {
          out.publishFailed++
          if (c.got.has(s)) out.receivedUnconfirmed++
          continue
        }
        out.published++
        if (!c.got.has(s)) lost++
      }
      out.lost += lost
      if (lost > 0) out.clientsWithLoss++
      out.doubled += c.doubled
      out.outOfOrder += c.outOfOrder
    }
    return out
  }

  private close (): { ok: true } {
    this.stopping = true
    for (const c of this.clients) {
      clearTimeout(c.timer)
      c.ws?.terminate()
    }
    return { ok: true }
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

const clients = new StormClients()
process.on('message', (msg: { id: number, command: StormCommand }) => {
  clients.handle(msg.command).then(
    (result) => { process.send?.({ id: msg.id, result }) },
    (err: unknown) => { process.send?.({ id: msg.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }) }
  )
})
process.on('disconnect', () => { process.exit(0) })
process.send?.({ ready: true })
