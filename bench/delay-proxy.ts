/**
 * A userspace delay proxy (this machine has no netem): a TCP proxy on
 * node:net that holds every chunk for a fixed time in each direction before
 * writing it on, in order. The bytes are not touched, so WebSocket, HTTP/1.1
 * and h2c pass unchanged. A FIN is passed on as a FIN (half-close: the other
 * direction keeps flowing) and a reset as a reset, each after the data sent
 * before it, with the same delay. Nothing is coalesced beyond what the delay
 * does: each chunk read is one write, on sockets with Nagle off. What it does
 * not model: the handshake (the client's connect completes at once; its first
 * bytes still take the delay), loss, jitter and bandwidth.
 *
 * In-process: `startDelayProxy({ target, delayMs })`. As a child:
 *   node bench/results/build/delay-proxy.js --target=127.0.0.1:3001 --delay=50 [--listen=0] [--up=50 --down=50]
 *   node bench/results/build/delay-proxy.js --selftest     # the proxy's own accuracy on loopback
 * or over IPC (procs.ts startNode with ipc, then call({ cmd: 'start', ... })).
 *
 * With `trace: 'h2' | 'h1'` it also records, per request, when it left the
 * client, reached the server, was answered and reached the client again,
 * read from the frame headers (h2) or the request and status lines (h1),
 * for timelines of what a long poll waited for.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { summarize, fmt, table, type Summary } from './stats.js'

const now = (): number => performance.timeOrigin + performance.now()

/** A timer fires when the loop's cached time says so, which can be up to ~0.5 ms before or after: write what is due within this. */
const TOLERANCE_MS = 0.5

export interface DelayProxyOptions {
  target: { host: string, port: number }
  /** One-way delay in ms, the same both ways, or per direction (up: client to target). */
  delayMs: number | { up: number, down: number }
  /** Default 0: any free port. */
  port?: number
  host?: string
  /** Record a timeline of requests and answers, read from the protocol's framing. */
  trace?: 'h2' | 'h1'
}

export interface TraceRecord {
  /** Which connection of the proxy (in accept order) and which stream on it (h2), 0 for h1. */
  conn: number
  stream: number
  /** When the request left the client, reached the server; when the answer left the server, reached the client. */
  sent: number
  arrived: number
  answered?: number
  received?: number
  /** The client reset (cancelled) the stream: when it sent the RST_STREAM. */
  reset?: number
}

export interface DelayProxyStats {
  connections: number
  open: number
  chunks: { up: number, down: number }
  bytes: { up: number, down: number }
  /** How late chunks were written against their due time (ms), over the last 100,000 writes. */
  lateness: Summary
}

export interface DelayProxy {
  port: number
  host: string
  readonly delay: { up: number, down: number }
  stats: () => DelayProxyStats
  /** The trace so far (empty without `trace`); `clear` starts a new one. */
  trace: (clear?: boolean) => TraceRecord[]
  close: () => Promise<void>
}

type Item = { due: number, kind: 'data', chunk: Buffer } | { due: number, kind: 'end' | 'reset' }

const LATENESS_KEPT = 100_000

/** One direction of one connection: chunks wait here until due, then go out in order. */
class DelayLine {
  private readonly q: Item[] = []
  private head = 0
  private timer: NodeJS.Timeout | undefined
  private done = false
  private blocked = false

  constructor (
    private readonly delay: number,
    private readonly dest: Socket,
    private readonly source: Socket,
    private readonly late: number[],
    private readonly onWrite: (item: Item, at: number) => void
  ) {}

  push (item: Omit<Item, 'due'> & { chunk?: Buffer }, at = now()): void {
    if (this.done) return
    this.q.push({ ...item, due: at + this.delay } as Item)
    if (this.delay <= 0 && this.q.length - this.head === 1) {
      this.flush()
      return
    }
    if (this.timer === undefined) this.arm()
  }

  private arm (): void {
    const first = this.q[this.head]
    if (first === undefined) return
    this.timer = setTimeout(() => { this.timer = undefined; this.flush() }, Math.max(0, first.due - now()))
  }

  private flush (): void {
    const t = now()
    while (this.head < this.q.length) {
      const item = this.q[this.head] as Item
      if (item.due > t + TOLERANCE_MS) break
      this.head++
      if (this.late.length >= LATENESS_KEPT) this.late.shift()
      this.late.push(t - item.due)
      this.onWrite(item, t)
      if (this.dest.destroyed) continue
      if (item.kind === 'data') {
        if (!this.dest.write(item.chunk) && !this.blocked) {
          // The far side reads slower than we deliver: stop reading the near side until it drains, as TCP would.
          this.blocked = true
          this.source.pause()
          this.dest.once('drain', () => { this.blocked = false; this.source.resume() })
        }
      } else if (item.kind === 'end') {
        this.dest.end()
      } else {
        this.done = true
        this.dest.resetAndDestroy()
      }
    }
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q.splice(0, this.head)
      this.head = 0
    }
    this.arm()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.done = true
  }
}

/** Reads HTTP/2 frame headers from one direction's byte stream, without buffering the payloads. */
class H2Frames {
  private skip: number
  private header = Buffer.alloc(0)

  constructor (preface: boolean, private readonly onFrame: (type: number, flags: number, stream: number) => void) {
    this.skip = preface ? 24 : 0
  }

  feed (chunk: Buffer): void {
    let at = 0
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at)
        this.skip -= n
        at += n
        continue
      }
      const need = 9 - this.header.length
      const part = chunk.subarray(at, at + need)
      at += part.length
      this.header = this.header.length === 0 ? Buffer.from(part) : Buffer.concat([this.header, part])
      if (this.header.length < 9) return
      const length = this.header.readUIntBE(0, 3)
      const type = this.header[3] as number
      const flags = this.header[4] as number
      const stream = this.header.readUInt32BE(5) & 0x7fffffff
      this.header = Buffer.alloc(0)
      this.skip = length
      this.onFrame(type, flags, stream)
    }
  }
}

const H2_DATA = 0
const H2_HEADERS = 1
const H2_RST = 3
const END_STREAM = 1

export async function startDelayProxy (o: DelayProxyOptions): Promise<DelayProxy> {
  const delay = typeof o.delayMs === 'number' ? { up: o.delayMs, down: o.delayMs } : o.delayMs
  const open = new Set<Socket>()
  const lines = new Set<DelayLine>()
  const late: number[] = []
  const counts = { connections: 0, chunks: { up: 0, down: 0 }, bytes: { up: 0, down: 0 } }
  let records: TraceRecord[] = []

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const conn = ++counts.connections
    const upstream = createConnection({ host: o.target.host, port: o.target.port, allowHalfOpen: true, noDelay: true })
    client.setNoDelay(true)
    open.add(client)
    open.add(upstream)
    const trace = o.trace === undefined ? undefined : tracer(o.trace, conn, (r) => { records.push(r) })
    const up = new DelayLine(delay.up, upstream, client, late, (item, at) => { if (item.kind === 'data') trace?.upWritten(item, at) })
    const down = new DelayLine(delay.down, client, upstream, late, (item, at) => { if (item.kind === 'data') trace?.downWritten(item, at) })
    lines.add(up)
    lines.add(down)
    /** Which side's end or reset has been passed on: a socket we destroyed ourselves passes nothing on. */
    const passed = { client: false, upstream: false }
    const wire = (from: Socket, line: DelayLine, side: 'client' | 'upstream'): void => {
      const dir = side === 'client' ? 'up' : 'down'
      from.on('data', (chunk: Buffer) => {
        const at = now()
        counts.chunks[dir]++
        counts.bytes[dir] += chunk.length
        if (dir === 'up') trace?.upRead(chunk, at, at + delay.up)
        else trace?.downRead(chunk, at, at + delay.down)
        line.push({ kind: 'data', chunk }, at)
      })
      from.on('end', () => { passed[side] = true; line.push({ kind: 'end' }) })
      from.on('error', () => {
        // ECONNRESET and the like: the far side gets a reset after the data before it.
        if (passed[side]) return
        passed[side] = true
        line.push({ kind: 'reset' })
      })
      from.on('close', () => {
        open.delete(from)
        // Destroyed without FIN or error (by us, for a reset from the other side): nothing to pass on.
      })
    }
    wire(client, up, 'client')
    wire(upstream, down, 'upstream')
    const forget = (): void => {
      if (client.destroyed && upstream.destroyed) { lines.delete(up); lines.delete(down); up.stop(); down.stop() }
    }
    client.on('close', forget)
    upstream.on('close', forget)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => { resolve() })
  })
  const port = (server.address() as { port: number }).port
  return {
    port,
    host: o.host ?? '127.0.0.1',
    delay,
    stats: () => ({ ...counts, chunks: { ...counts.chunks }, bytes: { ...counts.bytes }, open: open.size, lateness: summarize(late) }),
    trace: (clear = false) => {
      const out = records
      if (clear) records = []
      return out
    },
    close: async () => {
      for (const l of lines) l.stop()
      for (const s of open) s.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

interface Tracer {
  upRead: (chunk: Buffer, at: number, due: number) => void
  downRead: (chunk: Buffer, at: number, due: number) => void
  upWritten: (item: Item, at: number) => void
  downWritten: (item: Item, at: number) => void
}

/** The per-connection request timeline of `trace`. */
function tracer (kind: 'h2' | 'h1', conn: number, emit: (r: TraceRecord) => void): Tracer {
  if (kind === 'h1') {
    // One request at a time on a connection (no pipelining): a request line up, a status line down.
    let current: TraceRecord | undefined
    return {
      upRead: (chunk, at, due) => {
        if (/^(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH) /.test(chunk.subarray(0, 8).toString('latin1'))) {
          current = { conn, stream: 0, sent: at, arrived: due }
          emit(current)
        }
      },
      downRead: (chunk, at, due) => {
        if (current !== undefined && chunk.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ' && current.answered === undefined) {
          current.answered = at
          current.received = due
        }
      },
      upWritten: () => {},
      downWritten: () => {}
    }
  }
  const streams = new Map<number, TraceRecord>()
  let upAt = 0
  let upDue = 0
  let downAt = 0
  let downDue = 0
  const up = new H2Frames(true, (type, _flags, stream) => {
    if (type === H2_HEADERS && !streams.has(stream)) {
      const r: TraceRecord = { conn, stream, sent: upAt, arrived: upDue }
      streams.set(stream, r)
      emit(r)
    } else if (type === H2_RST) {
      const r = streams.get(stream)
      if (r !== undefined) r.reset = upAt
    }
  })
  const down = new H2Frames(false, (type, flags, stream) => {
    const r = streams.get(stream)
    if (r === undefined) return
    if ((type === H2_HEADERS || type === H2_DATA) && r.answered === undefined) {
      r.answered = downAt
      r.received = downDue
    }
    if ((flags & END_STREAM) !== 0 && (type === H2_HEADERS || type === H2_DATA)) streams.delete(stream)
  })
  return {
    upRead: (chunk, at, due) => { upAt = at; upDue = due; up.feed(chunk) },
    downRead: (chunk, at, due) => { downAt = at; downDue = due; down.feed(chunk) },
    upWritten: () => {},
    downWritten: () => {}
  }
}

// ---------------------------------------------------------------- accuracy

export interface Accuracy {
  delayMs: number
  /** One-way, client write to server read, through the proxy. */
  oneWay: Summary
  /** The same without the proxy. */
  direct: Summary
  /** oneWay - direct at p50 and p99, against delayMs. */
  addedP50: number
  addedP99: number
  /** Round trip through the proxy (2 x delay expected). */
  roundTrip: Summary
}

/**
 * Measures a proxy's added delay on loopback: an echo server in this
 * process, `pings` small messages `everyMs` apart on one connection, each
 * timed from the client's write to the server's read (one way, one clock)
 * and back (round trip); the same without the proxy for the baseline.
 * `start` makes a proxy to the given target with the given delay, in this
 * process or elsewhere.
 */
export async function measureAccuracy (
  start: (target: { host: string, port: number }, delayMs: number) => Promise<{ port: number, close: () => Promise<void> }>,
  delays: number[],
  pings = 200,
  everyMs = 5
): Promise<Accuracy[]> {
  const arrivals = new Map<number, number>()
  const echo = createServer({ noDelay: true }, (s) => {
    let buf = ''
    s.on('data', (d: Buffer) => {
      const at = now()
      buf += d.toString('latin1')
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        arrivals.set(Number(line), at)
        s.write(`${line}\n`)
      }
    })
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => { echo.listen(0, '127.0.0.1', () => { resolve() }) })
  const target = { host: '127.0.0.1', port: (echo.address() as { port: number }).port }
  let seq = 0
  const run = async (port: number, timeoutMs: number): Promise<{ oneWay: number[], rtt: number[] }> => {
    const sock = createConnection({ host: '127.0.0.1', port, noDelay: true })
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    const sentAt = new Map<number, number>()
    const oneWay: number[] = []
    const rtt: number[] = []
    let buf = ''
    let got = 0
    const done = new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => {
        const at = now()
        buf += d.toString('latin1')
        let nl
        while ((nl = buf.indexOf('\n')) >= 0) {
          const id = Number(buf.slice(0, nl))
          buf = buf.slice(nl + 1)
          const s = sentAt.get(id) as number
          rtt.push(at - s)
          oneWay.push((arrivals.get(id) as number) - s)
          if (++got === pings) resolve()
        }
      })
    })
    for (let i = 0; i < pings; i++) {
      const id = ++seq
      sentAt.set(id, now())
      sock.write(`${id}\n`)
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, timeoutMs))])
    sock.destroy()
    return { oneWay, rtt }
  }
  const direct = await run(target.port, 2000)
  const out: Accuracy[] = []
  for (const d of delays) {
    const proxy = await start(target, d)
    try {
      const r = await run(proxy.port, 2000 + 4 * d)
      const ow = summarize(r.oneWay)
      const base = summarize(direct.oneWay)
      out.push({ delayMs: d, oneWay: ow, direct: base, addedP50: ow.p50 - base.p50, addedP99: ow.p99 - base.p99, roundTrip: summarize(r.rtt) })
    } finally {
      await proxy.close()
    }
  }
  echo.close()
  return out
}

export function accuracyTable (acc: Accuracy[]): string {
  return table(['delay (ms)', 'one-way p50', 'p99', 'max', 'direct p50', 'added p50', 'added p99', 'round trip p50'], acc.map((a) => [
    String(a.delayMs), fmt(a.oneWay.p50), fmt(a.oneWay.p99), fmt(a.oneWay.max), fmt(a.direct.p50), fmt(a.addedP50), fmt(a.addedP99), fmt(a.roundTrip.p50)
  ]))
}

// ---------------------------------------------------------------- as a child

type ChildCommand =
  | { cmd: 'start', target: { host: string, port: number }, delayMs: number | { up: number, down: number }, trace?: 'h2' | 'h1' }
  | { cmd: 'stats', port: number }
  | { cmd: 'trace', port: number, clear?: boolean }
  | { cmd: 'close', port: number }

async function childMain (): Promise<void> {
  const proxies = new Map<number, DelayProxy>()
  const handle = async (c: ChildCommand): Promise<unknown> => {
    switch (c.cmd) {
      case 'start': {
        const p = await startDelayProxy({ target: c.target, delayMs: c.delayMs, trace: c.trace })
        proxies.set(p.port, p)
        return { port: p.port }
      }
      case 'stats': return proxies.get(c.port)?.stats()
      case 'trace': return proxies.get(c.port)?.trace(c.clear)
      case 'close': {
        await proxies.get(c.port)?.close()
        proxies.delete(c.port)
        return { ok: true }
      }
    }
  }
  process.on('message', (msg: { id: number, command: ChildCommand }) => {
    handle(msg.command).then(
      (result) => { process.send?.({ id: msg.id, result }) },
      (err: unknown) => { process.send?.({ id: msg.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }) }
    )
  })
  process.on('disconnect', () => { process.exit(0) })
  process.send?.({ ready: true })
}

async function cliMain (): Promise<void> {
  const args = new Map(process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=')
    return [k as string, v ?? 'true']
  }))
  if (args.get('selftest') === 'true') {
    const delays = (args.get('delays') ?? '0,20,50,70').split(',').map(Number)
    const acc = await measureAccuracy(async (target, delayMs) => await startDelayProxy({ target, delayMs }), delays)
    process.stdout.write(`delay proxy on loopback, in this process (200 pings 5 ms apart per delay)\n${accuracyTable(acc)}\n`)
    return
  }
  const target = args.get('target')
  if (target === undefined) throw new Error('give --target=host:port and --delay=ms (or --up= and --down=), or --selftest')
  const [host, port] = target.split(':')
  const d = Number(args.get('delay') ?? '0')
  const p = await startDelayProxy({
    target: { host: host as string, port: Number(port) },
    delayMs: { up: Number(args.get('up') ?? d), down: Number(args.get('down') ?? d) },
    port: Number(args.get('listen') ?? '0')
  })
  process.stdout.write(`delay proxy on ${p.host}:${p.port} -> ${target}, ${p.delay.up} ms up, ${p.delay.down} ms down\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.send !== undefined) await childMain()
  else await cliMain()
}
