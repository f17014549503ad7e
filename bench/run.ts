/**
 * `npm run bench`: starts the emulator, the bridge, the bare ws server and
 * the load generator as separate processes, runs each scenario against its
 * baseline in the same run, prints a table and writes every figure to
 * bench/results/. See bench/README.md for what each figure means.
 *
 *   npm run bench                 quick sizes
 *   npm run bench -- --full       the sizes of the issue (100/1,000/5,000 and 1,000/5,000/10,000)
 *   npm run bench -- --only=latency,memory   some scenarios only
 *   npm run bench -- --upstream=h1           the bridge polls over HTTP/1.1 instead of h2c
 *   npm run bench -- --only=compression      permessage-deflate off (baseline) and on: wire bytes, CPU, memory
 *   npm run bench -- --only=idle-cpu         the bridge's CPU with idle clients, against a bare ws server
 *   npm run bench -- --only=idle-cpu --idle-beat=25000 --profile   at the default heartbeat and hold, with a CPU profile
 *   npm run bench -- --only=idle-cpu --idle-clients=10000           one size, over h2c only
 *   npm run bench -- --only=storm            reconnect storms (every socket dropped; the bridge restarted) against a bare ws server; --handoff=false restarts without HANDOFF_FILE, --drain-ms=N sets DRAIN_MS, --clients=N and --rate=R
 *   npm run bench -- --only=network          a delayed network (userspace delay proxy): pushed events against direct polling
 */
import { cpus, totalmem, release, loadavg } from 'node:os'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort, profileDuring, ready, root, sleep, startBridge, startEmulator, startLoadgen, startNode, TOKEN, topSelfTime, until, usage, type Proc, type SelfTime } from './procs.js'
import { cliArgs, fmt, ratio, rowTable, summarize, type Row, type Summary } from './stats.js'
import { stormArgs, stormScenario } from './storm.js'
import { networkScenario } from './network.js'
import type { Collected, Deflate, Shape, Side } from './loadgen.js'

const here = fileURLToPath(new URL('./', import.meta.url))

const args = cliArgs()
const full = args.get('full') === 'true'
const only = args.get('only')?.split(',')
const upstream = args.get('upstream') === 'h1' ? 'h1' : 'h2c'
/** The heartbeat and the emulator's hold in the idle-CPU scenario (the defaults are 25 s). */
const idleBeatMs = Number(args.get('idle-beat') ?? '5000')
const profile = args.get('profile') === 'true'

const settings = {
  mode: full ? 'full' : 'quick',
  upstream,
  latencySizes: full ? [100, 1000, 5000] : [100, 1000],
  memorySizes: full ? [1000, 5000, 10_000] : [1000, 5000],
  /** Events per second published during a latency window, spread over the clients at random. */
  latencyRate: 200,
  latencySeconds: full ? 10 : 3,
  /** Requests per second during a round-trip window. */
  requestRate: 100,
  requestSeconds: full ? 8 : 2,
  throughputClients: 100,
  throughputTabs: 10,
  throughputSeconds: full ? 10 : 3,
  throughputConcurrency: 64,
  upstreamClients: 100,
  upstreamTabs: 3,
  upstreamSeconds: full ? 60 : 10,
  upstreamHoldMs: full ? 25_000 : 3000,
  /** Each client gets an event this often on average in the upstream-load scenario. */
  upstreamEventEveryS: 10,
  holdMs: 25_000,
  compressionClients: full ? 5000 : 1000,
  /** Events per second during a compression window, each to one random client. */
  compressionRate: 500,
  compressionSeconds: full ? 10 : 4,
  /** Idle clients by how the bridge polls upstream: h2c at the size, HTTP/1.1 (a connection a poll) smaller. */
  idleSizes: args.has('idle-clients')
    ? { h2c: [Number(args.get('idle-clients'))], h1: [] }
    : { h2c: full ? [5000, 10_000] : [2000], h1: full ? [5000] : [1000] },
  idleBeatMs,
  /** HEARTBEAT_MS and EMULATOR_HOLD_MS where the bridge runs with its defaults. */
  idleDefaultBeatMs: 25_000,
  /** The window, in heartbeats (and holds): whole periods, at least two. */
  idlePeriods: full ? 6 : 3
}

const rows: Row[] = []
const figures: Record<string, unknown> = {}

function log (msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

// ---------------------------------------------------------------- processes

async function emulator (holdMs = settings.holdMs): Promise<Proc & { origin: string }> {
  return await startEmulator(holdMs)
}

async function bridge (emu: { origin: string }, env: Record<string, string> = {}): Promise<Proc & { ws: string }> {
  return await startBridge('bridge', emu, {
    UPSTREAM_HTTP2: upstream === 'h2c' ? 'h2c' : 'off',
    UPSTREAM_POLL_CONNECTIONS: upstream === 'h2c' ? '4000' : '12000',
    ...env
  })
}

const loadgen = startLoadgen

async function bareWs (env: Record<string, string> = {}): Promise<Proc & { ws: string }> {
  const p = startNode('bare-ws', `${here}bare-ws.js`, { PORT: '0', ...env }, { ipc: true })
  const { port } = await ready<{ port: number }>(p)
  return Object.assign(p, { ws: `ws://127.0.0.1:${port}/` })
}

async function stats (emu: { origin: string }): Promise<{ activePolls: number, requests: Record<string, number> }> {
  return await (await fetch(`${emu.origin}/operator/stats`)).json() as { activePolls: number, requests: Record<string, number> }
}

async function connections (emu: { origin: string }): Promise<{ open: number, accepted: number, http2Sessions: number }> {
  return await (await fetch(`${emu.origin}/operator/connections`)).json() as { open: number, accepted: number, http2Sessions: number }
}

async function heldPolls (emu: { origin: string }, n: number, timeoutMs = 120_000): Promise<void> {
  await until(async () => (await stats(emu)).activePolls >= n, timeoutMs, `${n} held polls`, 200)
}

async function stopAll (...ps: Array<Proc | undefined>): Promise<void> {
  await Promise.all(ps.map(async (p) => { await p?.stop() }))
}

async function cpuOf<T> (ps: Proc[], fn: () => Promise<T>): Promise<{ result: T, cpu: Record<string, number>, seconds: number }> {
  const before = ps.map((p) => usage(p.pid).cpuSeconds)
  const started = performance.now()
  const result = await fn()
  const seconds = (performance.now() - started) / 1000
  const cpu: Record<string, number> = {}
  ps.forEach((p, i) => { cpu[p.name] = (usage(p.pid).cpuSeconds - (before[i] as number)) / seconds })
  return { result, cpu, seconds }
}

// ---------------------------------------------------------------- scenarios

interface SideFigures { latency: Summary, roundTrip: Summary, bytesPerEvent: number, events: number }

const sideFigures = (lat: Side, rtt: Side): SideFigures =>
  ({ latency: summarize(lat.latencies), roundTrip: summarize(rtt.roundTrips), bytesPerEvent: lat.bytes / lat.events, events: lat.events })

/** Half-second windows, taking turns between the two kinds of client. */
const WINDOW_S = 0.5

/**
 * Both kinds of client connected to one emulator: `size` clients of the
 * bridge and `size` front ends long-polling the emulator directly. The load
 * takes turns: half a second of events (then of sends) for the bridge's
 * clients, half a second for the direct ones, and so on, so that each side
 * is measured at the same load as if alone, while whatever else the machine
 * is doing falls on both alike.
 */
async function latencyBoth (size: number): Promise<{ bridge: SideFigures, direct: SideFigures, errors: number }> {
  const emu = await emulator()
  const br = await bridge(emu)
  const gen = await loadgen()
  const turns = async (seconds: number, run: (kind: 'ws' | 'direct', s: number) => Promise<void>): Promise<void> => {
    const n = Math.max(1, Math.round(seconds / WINDOW_S))
    for (let i = 0; i < n; i++) {
      await run(i % 2 === 0 ? 'ws' : 'direct', seconds / n)
      await run(i % 2 === 0 ? 'direct' : 'ws', seconds / n)
    }
  }
  const publish = async (kind: 'ws' | 'direct', seconds: number): Promise<void> => {
    await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: settings.latencyRate, seconds, concurrency: 64, kind })
  }
  const send = async (kind: 'ws' | 'direct', seconds: number): Promise<void> => {
    await gen.call({ cmd: 'requests', mode: kind, origin: emu.origin, token: TOKEN, rate: settings.requestRate, seconds, concurrency: 64 })
  }
  try {
    await gen.call({ cmd: 'connect', url: br.ws, clients: size, tabs: 1, shareCid: false })
    await gen.call({ cmd: 'poll', origin: emu.origin, token: TOKEN, clients: size, tabs: 1 })
    // The bridge's one upstream poll per client, and the direct ones.
    await heldPolls(emu, 2 * size)
    // A second of the same load first, so that what is measured runs warm (compiled, pools open) on both sides.
    await turns(1, publish)
    await turns(1, send)
    await sleep(500)
    await gen.call({ cmd: 'measure', parse: true })
    await turns(settings.latencySeconds, publish)
    await sleep(500)
    const lat = await gen.call<Collected>({ cmd: 'collect' })
    await gen.call({ cmd: 'measure', parse: true })
    await turns(settings.requestSeconds, send)
    const rtt = await gen.call<Collected>({ cmd: 'collect' })
    await gen.call({ cmd: 'stopPolls' })
    return { bridge: sideFigures(lat.ws, rtt.ws), direct: sideFigures(lat.direct, rtt.direct), errors: lat.errors + rtt.errors }
  } finally {
    await stopAll(gen, br, emu)
  }
}

async function latencyScenario (): Promise<void> {
  const out: Record<string, unknown> = {}
  for (const size of settings.latencySizes) {
    log(`latency and round trip at ${size} clients: through the bridge and polling directly, taking turns`)
    const both = await latencyBoth(size)
    const { bridge: viaBridge, direct } = both
    out[size] = both
    const l = viaBridge.latency
    const d = direct.latency
    for (const q of ['p50', 'p99', 'max'] as const) {
      rows.push({
        figure: `event latency ${q} (ms)`,
        size: String(size),
        bridge: fmt(l[q]),
        baseline: fmt(d[q]),
        ratio: `${fmt(ratio(l[q], d[q]))}x, +${fmt(l[q] - d[q])} ms`,
        target: q === 'p99' && size === 1000 ? 'added <= 2 ms' : ''
      })
    }
    for (const q of ['p50', 'p99'] as const) {
      rows.push({
        figure: `request round trip ${q} (ms)`,
        size: String(size),
        bridge: fmt(viaBridge.roundTrip[q]),
        baseline: fmt(direct.roundTrip[q]),
        ratio: `${fmt(ratio(viaBridge.roundTrip[q], direct.roundTrip[q]))}x, +${fmt(viaBridge.roundTrip[q] - direct.roundTrip[q])} ms`,
        target: q === 'p50' ? 'added <= 1 ms' : ''
      })
    }
    rows.push({
      figure: 'client wire bytes per event',
      size: String(size),
      bridge: fmt(viaBridge.bytesPerEvent, 0),
      baseline: fmt(direct.bytesPerEvent, 0),
      ratio: `${fmt(ratio(viaBridge.bytesPerEvent, direct.bytesPerEvent))}x`,
      target: ''
    })
  }
  figures.latency = out
}

async function memoryScenario (): Promise<void> {
  const emu = await emulator()
  const br = await bridge(emu)
  const gen = await loadgen()
  const out: Array<Record<string, number>> = []
  try {
    await sleep(1500)
    const base = usage(br.pid).rssBytes
    let previous = { clients: 0, rss: base }
    for (const size of settings.memorySizes) {
      log(`memory: ${size} idle clients, each with its own upstream poll`)
      await gen.call({ cmd: 'connect', url: br.ws, clients: size - previous.clients, tabs: 1, shareCid: false })
      await heldPolls(emu, size, 300_000)
      await sleep(3000)
      const rss = usage(br.pid).rssBytes
      const conns = await connections(emu)
      const fds = readdirSync(`/proc/${br.pid}/fd`).length
      const perClient = (rss - base) / size
      const marginal = (rss - previous.rss) / (size - previous.clients)
      out.push({ clients: size, rssBytes: rss, baseRssBytes: base, perClientBytes: perClient, marginalPerClientBytes: marginal, upstreamConnections: conns.open, http2Sessions: conns.http2Sessions, bridgeOpenFiles: fds })
      rows.push({
        figure: 'bridge RSS per idle client (KB)',
        size: String(size),
        bridge: fmt(perClient / 1024, 1),
        baseline: `${fmt(marginal / 1024, 1)} marginal`,
        ratio: `${conns.open} upstream conns, ${fds} files`,
        target: upstream === 'h2c' ? (size === 10_000 ? '<= 10 KB' : '') : (size === 1000 ? '<= 14 KB' : '')
      })
      previous = { clients: size, rss }
    }
  } finally {
    await stopAll(gen, br, emu)
  }
  figures.memory = out
}

async function throughputScenario (): Promise<void> {
  const { throughputClients: clients, throughputTabs: tabs, throughputSeconds: seconds, throughputConcurrency: concurrency } = settings
  const out: Record<string, unknown> = {}
  let frame = ''
  {
    log(`throughput through the bridge: ${clients} clients x ${tabs} sockets sharing a connection`)
    const emu = await emulator()
    const br = await bridge(emu)
    const gen = await loadgen()
    try {
      await gen.call({ cmd: 'connect', url: br.ws, clients, tabs, shareCid: true })
      await heldPolls(emu, clients)
      // One event first, to capture a real frame for the bare server to push.
      await gen.call({ cmd: 'measure', parse: true })
      await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: 0, seconds: 0.3, concurrency: 1 })
      await sleep(300)
      frame = (await gen.call<Collected & { lastFrame: string }>({ cmd: 'collect' })).lastFrame
      await gen.call({ cmd: 'measure', parse: false })
      const events = await cpuOf([br, emu, gen], async () => {
        await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: 0, seconds, concurrency })
        await sleep(300)
        return await gen.call<Collected>({ cmd: 'collect' })
      })
      await gen.call({ cmd: 'measure', parse: true })
      const requests = await cpuOf([br, emu, gen], async () => {
        await gen.call({ cmd: 'requests', mode: 'ws', rate: 0, seconds, concurrency })
        return await gen.call<Collected>({ cmd: 'collect' })
      })
      await gen.call({ cmd: 'disconnect' })
      // The same front ends without the bridge: every tab long-polls the emulator for its client's events.
      await gen.call({ cmd: 'poll', origin: emu.origin, token: TOKEN, clients, tabs })
      await heldPolls(emu, clients * tabs)
      await gen.call({ cmd: 'measure', parse: true })
      const direct = await cpuOf([emu, gen], async () => {
        await gen.call({ cmd: 'requests', mode: 'direct', origin: emu.origin, token: TOKEN, rate: 0, seconds, concurrency })
        return await gen.call<Collected>({ cmd: 'collect' })
      })
      await gen.call({ cmd: 'stopPolls' })
      out.bridge = { events: { perSecond: events.result.frames / events.result.seconds, cpu: events.cpu, errors: events.result.errors }, requests: { perSecond: requests.result.results / requests.result.seconds, cpu: requests.cpu }, directRequests: { perSecond: direct.result.results / direct.result.seconds, cpu: direct.cpu } }
    } finally {
      await stopAll(gen, br, emu)
    }
  }
  {
    log('throughput ceiling: a bare ws server pushing the same frames to the same sockets')
    const bare = await bareWs()
    const gen = await loadgen()
    try {
      await gen.call({ cmd: 'connect', url: bare.ws, clients, tabs, shareCid: true })
      await gen.call({ cmd: 'measure', parse: false })
      const pushed = await cpuOf([bare, gen], async () => {
        await bare.call({ frame, seconds })
        await sleep(300)
        return await gen.call<Collected>({ cmd: 'collect' })
      })
      out.bare = { events: { perSecond: pushed.result.frames / pushed.result.seconds, cpu: pushed.cpu }, frameBytes: Buffer.byteLength(frame) }
    } finally {
      await stopAll(gen, bare)
    }
  }
  figures.throughput = out
  const b = out.bridge as { events: { perSecond: number, cpu: Record<string, number> }, requests: { perSecond: number, cpu: Record<string, number> }, directRequests: { perSecond: number, cpu: Record<string, number> } }
  const c = out.bare as { events: { perSecond: number, cpu: Record<string, number> } }
  const cpu = (x: Record<string, number>): string => Object.entries(x).map(([k, v]) => `${k} ${Math.round(v * 100)}%`).join(', ')
  rows.push({ figure: 'events pushed per second', size: `${clients * tabs} sockets`, bridge: fmt(b.events.perSecond, 0), baseline: `${fmt(c.events.perSecond, 0)} bare ws`, ratio: `${fmt(ratio(b.events.perSecond, c.events.perSecond))}x`, target: '>= 0.75x' })
  rows.push({ figure: '  CPU while pushing', size: '', bridge: cpu(b.events.cpu), baseline: cpu(c.events.cpu), ratio: '', target: '' })
  rows.push({ figure: 'requests forwarded per second', size: `${concurrency} in flight`, bridge: fmt(b.requests.perSecond, 0), baseline: `${fmt(b.directRequests.perSecond, 0)} direct`, ratio: `${fmt(ratio(b.requests.perSecond, b.directRequests.perSecond))}x`, target: '' })
  rows.push({ figure: '  CPU while forwarding', size: '', bridge: cpu(b.requests.cpu), baseline: cpu(b.directRequests.cpu), ratio: '', target: '' })
}

async function upstreamScenario (): Promise<void> {
  const { upstreamClients: clients, upstreamTabs: tabs, upstreamSeconds: seconds, upstreamHoldMs: holdMs } = settings
  const rate = clients / settings.upstreamEventEveryS
  const minutes = (clients * seconds) / 60
  const run = async (viaBridge: boolean): Promise<Record<string, number>> => {
    const emu = await emulator(holdMs)
    const br = viaBridge ? await bridge(emu) : undefined
    const gen = await loadgen()
    try {
      if (br !== undefined) await gen.call({ cmd: 'connect', url: br.ws, clients, tabs, shareCid: false })
      else await gen.call({ cmd: 'poll', origin: emu.origin, token: TOKEN, clients, tabs })
      await heldPolls(emu, clients * tabs)
      const s0 = await stats(emu)
      const c0 = await connections(emu)
      await gen.call({ cmd: 'measure', parse: true })
      await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate, seconds, concurrency: 16 })
      const s1 = await stats(emu)
      const c1 = await connections(emu)
      const seen = await gen.call<Collected>({ cmd: 'collect' })
      const polls = (s1.requests.events ?? 0) - (s0.requests.events ?? 0)
      return { polls, pollsPerClientMinute: polls / minutes, connectionsOpened: c1.accepted - c0.accepted, connectionsOpen: c1.open, connectionsPerClient: c1.open / clients, events: seen.events }
    } finally {
      await stopAll(gen, br, emu)
    }
  }
  log(`upstream load: ${clients} clients x ${tabs} tabs, direct polling`)
  const direct = await run(false)
  log(`upstream load: ${clients} clients x ${tabs} tabs, through the bridge`)
  const viaBridge = await run(true)
  figures.upstream = { bridge: viaBridge, direct, holdMs, seconds, eventsPerClientMinute: 60 / settings.upstreamEventEveryS }
  const b = viaBridge
  const d = direct
  rows.push({ figure: 'upstream polls per client-minute', size: `${clients}x${tabs} tabs`, bridge: fmt(b.pollsPerClientMinute as number), baseline: fmt(d.pollsPerClientMinute as number), ratio: `${fmt(ratio(b.pollsPerClientMinute as number, d.pollsPerClientMinute as number))}x`, target: '' })
  rows.push({ figure: 'upstream connections open per client', size: `${clients}x${tabs} tabs`, bridge: fmt(b.connectionsPerClient as number, 3), baseline: fmt(d.connectionsPerClient as number, 3), ratio: `${fmt(ratio(b.connectionsPerClient as number, d.connectionsPerClient as number), 3)}x`, target: '' })
  rows.push({ figure: 'upstream connections opened per client-minute', size: `${clients}x${tabs} tabs`, bridge: fmt((b.connectionsOpened as number) / minutes, 3), baseline: fmt((d.connectionsOpened as number) / minutes, 3), ratio: '', target: '' })
}

async function emulatorAlone (): Promise<void> {
  log('the emulator alone: publish and deliver to 1,000 direct pollers, then direct sends')
  const emu = await emulator()
  const gen = await loadgen()
  try {
    await gen.call({ cmd: 'poll', origin: emu.origin, token: TOKEN, clients: 1000, tabs: 1 })
    await heldPolls(emu, 1000)
    await gen.call({ cmd: 'measure', parse: true })
    const events = await cpuOf([emu, gen], async () => {
      const p = await gen.call<{ published: number, seconds: number }>({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: 0, seconds: settings.throughputSeconds, concurrency: settings.throughputConcurrency })
      await sleep(300)
      return { ...p, seen: await gen.call<Collected>({ cmd: 'collect' }) }
    })
    await gen.call({ cmd: 'measure', parse: true })
    const sends = await cpuOf([emu, gen], async () => {
      await gen.call({ cmd: 'requests', mode: 'direct', origin: emu.origin, token: TOKEN, rate: 0, seconds: settings.throughputSeconds, concurrency: settings.throughputConcurrency })
      return await gen.call<Collected>({ cmd: 'collect' })
    })
    const out = {
      publishedPerSecond: events.result.published / events.result.seconds,
      deliveredPerSecond: events.result.seen.events / events.result.seen.seconds,
      cpuWhilePublishing: events.cpu,
      sendsPerSecond: sends.result.results / sends.result.seconds,
      cpuWhileSending: sends.cpu
    }
    figures.emulator = out
    rows.push({ figure: 'emulator alone: events published/s', size: '1000 pollers', bridge: '', baseline: fmt(out.publishedPerSecond, 0), ratio: `emulator CPU ${Math.round((out.cpuWhilePublishing.emulator ?? 0) * 100)}%`, target: '' })
    rows.push({ figure: 'emulator alone: sends answered/s', size: `${settings.throughputConcurrency} in flight`, bridge: '', baseline: fmt(out.sendsPerSecond, 0), ratio: `emulator CPU ${Math.round((out.cpuWhileSending.emulator ?? 0) * 100)}%`, target: '' })
  } finally {
    await stopAll(gen, emu)
  }
}

/** One way of running the bridge for the compression scenario; the first is the baseline. */
interface CompressionVariant { name: string, env: Record<string, string>, deflate: Deflate }

const COMPRESSION_VARIANTS: CompressionVariant[] = [
  { name: 'off', env: {}, deflate: 'offer' },
  { name: 'on', env: { WS_COMPRESSION: 'true' }, deflate: 'offer' },
  { name: 'on, context kept', env: { WS_COMPRESSION: 'true', WS_COMPRESSION_CONTEXT: 'true' }, deflate: 'offer' },
  { name: 'on, clients compress too', env: { WS_COMPRESSION: 'true' }, deflate: 'compress' }
]

/** Events of one shape through one bridge: wire bytes (TCP, read and written) and the frames' own bytes per event, and the bridge's CPU. */
interface CompressionWindow { events: number, bytesPerEvent: number, frameBytes: number, cpuSecondsPer1000: number }
interface CompressionFigures {
  deflated: number
  connectedPerClientBytes: number
  idlePerClientBytes: number
  /** The same without V8's heap (RSS less the heap's size): zlib's streams are there, and it does not move with the garbage collector. */
  idleNativePerClientBytes: number
  firstAnswer: CompressionWindow
  botAnswer: CompressionWindow
  small: CompressionWindow
}

/** A bridge's resident memory, and the part of it that is not V8's heap (from its /metrics). */
interface Memory { rss: number, native: number }

/** A bridge of one variant with its own load generator, and what was read of it so far. */
interface CompressionRun { v: CompressionVariant, br: Proc & { ws: string }, gen: Proc, base: Memory, deflated: number, connected: Memory }

async function memoryOf (br: Proc & { ws: string }): Promise<Memory> {
  const text = await (await fetch(br.ws.replace(/^ws:/, 'http:').replace(/\/v1\/ws$/, '/metrics'))).text()
  const heap = Number(/^nodejs_heap_size_total_bytes (\d+)/m.exec(text)?.[1] ?? NaN)
  const rss = usage(br.pid).rssBytes
  return { rss, native: rss - heap }
}

const delivered = async (gen: Proc): Promise<number> => (await gen.call<{ events: number }>({ cmd: 'sample' })).events

/**
 * Events of `shape` at a fixed rate to random clients of every bridge, in
 * half-second turns from one bridge to the next (so that whatever else the
 * machine does falls on all alike); a bridge's CPU is counted over its own
 * turns, each until its events are delivered.
 */
async function compressionWindows (emu: { origin: string }, runs: CompressionRun[], shape: Shape): Promise<CompressionWindow[]> {
  const published = runs.map(() => 0)
  const cpu = runs.map(() => 0)
  for (const r of runs) await r.gen.call({ cmd: 'measure', parse: true })
  const turns = Math.max(1, Math.round(settings.compressionSeconds / WINDOW_S))
  for (let turn = 0; turn < turns; turn++) {
    for (let k = 0; k < runs.length; k++) {
      const i = (turn + k) % runs.length
      const r = runs[i] as CompressionRun
      const before = usage(r.br.pid).cpuSeconds
      const p = await r.gen.call<{ published: number }>({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: settings.compressionRate, seconds: WINDOW_S, concurrency: 16, shape })
      published[i] = (published[i] as number) + p.published
      await until(async () => await delivered(r.gen) >= (published[i] as number), 30_000, `${r.v.name}: ${published[i] as number} events delivered`, 20)
      cpu[i] = (cpu[i] as number) + usage(r.br.pid).cpuSeconds - before
    }
  }
  return await Promise.all(runs.map(async (r, i) => await windowOf(r.gen, cpu[i] as number)))
}

async function windowOf (gen: Proc, cpuSeconds: number): Promise<CompressionWindow> {
  const seen = (await gen.call<Collected>({ cmd: 'collect' })).ws
  return { events: seen.events, bytesPerEvent: seen.bytes / seen.events, frameBytes: seen.textBytes / seen.events, cpuSecondsPer1000: (cpuSeconds / seen.events) * 1000 }
}

/** One bot answer to every client of each bridge in turn: a socket's first large frame, when ws makes its zlib stream. */
async function firstAnswers (emu: { origin: string }, runs: CompressionRun[], size: number): Promise<CompressionWindow[]> {
  const out: CompressionWindow[] = []
  for (const r of runs) {
    await r.gen.call({ cmd: 'measure', parse: true })
    const before = usage(r.br.pid).cpuSeconds
    await r.gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: 0, seconds: 0, concurrency: 16, shape: 'botAnswer', each: true })
    await until(async () => await delivered(r.gen) >= size, 60_000, `${r.v.name}: a bot answer to each of ${size} clients`, 20)
    out.push(await windowOf(r.gen, usage(r.br.pid).cpuSeconds - before))
  }
  return out
}

/**
 * The same clients and events through a bridge of each variant, all running
 * at once against one emulator: `size` clients per bridge, each its own
 * socket and poll, whose sockets offer permessage-deflate. First one bot
 * answer to every client, so that each socket has had a large frame before
 * the idle memory is read; then small events and bot answers, taking turns.
 */
async function compressionScenario (): Promise<void> {
  const size = settings.compressionClients
  const emu = await emulator()
  const runs: CompressionRun[] = []
  try {
    const none = { rss: 0, native: 0 }
    for (const v of COMPRESSION_VARIANTS) runs.push({ v, br: await bridge(emu, v.env), gen: await loadgen(), base: none, deflated: 0, connected: none })
    await sleep(1500)
    for (const r of runs) r.base = await memoryOf(r.br)
    for (const r of runs) {
      log(`compression ${r.v.name}: ${size} clients offering permessage-deflate${r.v.deflate === 'compress' ? ', and compressing every frame they send' : ''}`)
      r.deflated = (await r.gen.call<{ deflated: number }>({ cmd: 'connect', url: r.br.ws, clients: size, tabs: 1, shareCid: false, deflate: r.v.deflate })).deflated
      log(`  ${r.deflated} of ${size} sockets negotiated permessage-deflate`)
    }
    await heldPolls(emu, size * runs.length, 300_000)
    await sleep(3000)
    for (const r of runs) r.connected = await memoryOf(r.br)
    log('compression: a bot answer to every client, then idle')
    const firstAnswer = await firstAnswers(emu, runs, size)
    await sleep(3000)
    const idle = await Promise.all(runs.map(async (r) => await memoryOf(r.br)))
    log(`compression: small events, then bot answers, ${settings.compressionRate}/s in turns of ${WINDOW_S} s, ${settings.compressionSeconds} s per bridge`)
    const small = await compressionWindows(emu, runs, 'small')
    const botAnswer = await compressionWindows(emu, runs, 'botAnswer')
    const out: Record<string, CompressionFigures> = {}
    runs.forEach((r, i) => {
      out[r.v.name] = {
        deflated: r.deflated,
        connectedPerClientBytes: (r.connected.rss - r.base.rss) / size,
        idlePerClientBytes: ((idle[i] as Memory).rss - r.base.rss) / size,
        idleNativePerClientBytes: ((idle[i] as Memory).native - r.base.native) / size,
        firstAnswer: firstAnswer[i] as CompressionWindow,
        small: small[i] as CompressionWindow,
        botAnswer: botAnswer[i] as CompressionWindow
      }
    })
    figures.compression = out
    compressionRows(out, size)
  } finally {
    await stopAll(...runs.map((r) => r.gen), ...runs.map((r) => r.br), emu)
  }
}

function compressionRows (out: Record<string, CompressionFigures>, size: number): void {
  const off = out[COMPRESSION_VARIANTS[0]?.name ?? ''] as CompressionFigures
  const x = (a: number, b: number): string => `${fmt(ratio(a, b))}x`
  const added = (a: number, b: number, scale: number, unit: string): string => `${a >= b ? '+' : ''}${fmt((a - b) * scale, unit === 'KB' ? 1 : 0)} ${unit}`
  for (const v of COMPRESSION_VARIANTS.slice(1)) {
    const on = out[v.name] as CompressionFigures
    const cpuRow = (figure: string, a: CompressionWindow, b: CompressionWindow): void => {
      rows.push({ figure, size: '', bridge: fmt(a.cpuSecondsPer1000, 3), baseline: `${fmt(b.cpuSecondsPer1000, 3)} off`, ratio: `${x(a.cpuSecondsPer1000, b.cpuSecondsPer1000)}, ${added(a.cpuSecondsPer1000, b.cpuSecondsPer1000, 1000, 'us/event')}`, target: '' })
    }
    for (const [kind, label] of [['botAnswer', 'bot answer'], ['small', 'small event']] as const) {
      rows.push({ figure: `wire bytes per ${label} (${fmt(off[kind].frameBytes, 0)} B frame)`, size: `${size}, ${v.name}`, bridge: fmt(on[kind].bytesPerEvent, 0), baseline: `${fmt(off[kind].bytesPerEvent, 0)} off`, ratio: x(on[kind].bytesPerEvent, off[kind].bytesPerEvent), target: '' })
      cpuRow(`  bridge CPU s per 1,000 ${label}s`, on[kind], off[kind])
    }
    cpuRow('  the same for a socket\'s first bot answer', on.firstAnswer, off.firstAnswer)
    rows.push({ figure: '  bridge RSS per idle client (KB)', size: '', bridge: fmt(on.idlePerClientBytes / 1024, 1), baseline: `${fmt(off.idlePerClientBytes / 1024, 1)} off`, ratio: `${x(on.idlePerClientBytes, off.idlePerClientBytes)}, ${added(on.idlePerClientBytes, off.idlePerClientBytes, 1 / 1024, 'KB')}`, target: '' })
    rows.push({ figure: '  of it outside V8\'s heap (KB)', size: '', bridge: fmt(on.idleNativePerClientBytes / 1024, 1), baseline: `${fmt(off.idleNativePerClientBytes / 1024, 1)} off`, ratio: added(on.idleNativePerClientBytes, off.idleNativePerClientBytes, 1 / 1024, 'KB'), target: '' })
    rows.push({ figure: '  RSS per client before any event (KB)', size: '', bridge: fmt(on.connectedPerClientBytes / 1024, 1), baseline: `${fmt(off.connectedPerClientBytes / 1024, 1)} off`, ratio: added(on.connectedPerClientBytes, off.connectedPerClientBytes, 1 / 1024, 'KB'), target: '' })
  }
}

/** How the bridge polls upstream in the idle-CPU scenario: h2c streams, or an HTTP/1.1 connection a poll. */
type Transport = 'h2c' | 'h1'

/** CPU over one idle window, as a share of one core by process, with the polls the emulator answered in it. */
interface IdleWindow { cpu: Record<string, number>, seconds: number, polls: number }

interface IdleFigures {
  transport: Transport
  clients: number
  beatMs: number
  /** The bridge and the emulator with no client, before the clients come. */
  empty: IdleWindow
  /** The bridge, the emulator and the load generator with every client welcomed and its poll held. */
  idle: IdleWindow
  /** A bare ws server with the same sockets and heartbeat, and the load generator. */
  bare: IdleWindow
  sockets: number
  heldPolls: number
  upstreamConnections: number
  /** The bridge's top functions by self time over one more window, profiled (not the measured one). */
  profile?: SelfTime[]
}

const idleWindowMs = (): number => settings.idlePeriods * settings.idleBeatMs

/** The CPU of `ps` over one window of whole heartbeats and holds in which nothing but the idle work happens. */
async function idleWindow (emu: { origin: string } | undefined, ps: Proc[]): Promise<IdleWindow> {
  const polls = async (): Promise<number> => emu === undefined ? 0 : (await stats(emu)).requests.events ?? 0
  const p0 = await polls()
  const w = await cpuOf(ps, async () => { await sleep(idleWindowMs()) })
  return { cpu: w.cpu, seconds: w.seconds, polls: await polls() - p0 }
}

/**
 * The bridge with no client, then with `size` idle clients (each a socket,
 * a clientId and a cid, and so an upstream poll held by the emulator), after
 * two heartbeats and holds of steady state; then a bare ws server with the
 * same sockets and heartbeat.
 */
async function idleRun (transport: Transport, size: number): Promise<IdleFigures> {
  const beatMs = settings.idleBeatMs
  const settle = 2 * beatMs
  let viaBridge: Omit<IdleFigures, 'bare'>
  {
    const emu = await emulator(beatMs)
    const inspectPort = profile ? await freePort() : 0
    const br = await startBridge('bridge', emu, {
      HEARTBEAT_MS: String(beatMs),
      UPSTREAM_HTTP2: transport === 'h2c' ? 'h2c' : 'off',
      UPSTREAM_POLL_CONNECTIONS: transport === 'h2c' ? '4000' : '12000'
    }, profile ? [`--inspect=127.0.0.1:${inspectPort}`] : [])
    const gen = await loadgen()
    try {
      await sleep(3000)
      log(`idle CPU: the bridge with no client (${transport}, ${beatMs / 1000} s heartbeat and hold), ${idleWindowMs() / 1000} s`)
      const empty = await idleWindow(emu, [br, emu])
      log(`idle CPU: ${size} idle clients through the bridge, each with its own upstream poll`)
      await gen.call({ cmd: 'connect', url: br.ws, clients: size, tabs: 1, shareCid: false, parse: false })
      await heldPolls(emu, size, 300_000)
      await sleep(settle)
      const idle = await idleWindow(emu, [br, emu, gen])
      const readyz = await (await fetch(br.ws.replace(/^ws:/, 'http:').replace(/\/v1\/ws$/, '/readyz'))).json() as { sockets: number }
      const held = (await stats(emu)).activePolls
      const conns = await connections(emu)
      viaBridge = { transport, clients: size, beatMs, empty, idle, sockets: readyz.sockets, heldPolls: held, upstreamConnections: conns.open }
      if (profile) {
        log('idle CPU: profiling the bridge over one more window')
        const prof = await profileDuring(inspectPort, async () => { await sleep(idleWindowMs()) })
        writeFileSync(`${root}bench/results/idle-cpu-${transport}-${size}.cpuprofile`, JSON.stringify(prof))
        viaBridge.profile = topSelfTime(prof, 20)
        for (const f of viaBridge.profile) log(`  ${fmt(f.share * 100, 1).padStart(5)}%  ${fmt(f.ofCore * 100, 3)}% of a core  ${f.fn}`)
      }
    } finally {
      await stopAll(gen, br, emu)
    }
  }
  log(`idle CPU: the same ${size} sockets on a bare ws server with the same heartbeat`)
  const bare = await bareWs({ HEARTBEAT_MS: String(beatMs) })
  const gen = await loadgen()
  try {
    await gen.call({ cmd: 'connect', url: bare.ws, clients: size, tabs: 1, shareCid: false, parse: false })
    await sleep(settle)
    return { ...viaBridge, bare: await idleWindow(undefined, [bare, gen]) }
  } finally {
    await stopAll(gen, bare)
  }
}

async function idleCpuScenario (): Promise<void> {
  const out: IdleFigures[] = []
  for (const transport of ['h2c', 'h1'] as const) {
    for (const size of settings.idleSizes[transport]) {
      const f = await idleRun(transport, size)
      out.push(f)
      idleRows(f)
    }
  }
  figures.idleCpu = { beatMs: settings.idleBeatMs, windowMs: idleWindowMs(), runs: out }
}

/**
 * CPU for a heartbeat scales with the heartbeat's rate and CPU for a re-poll
 * with the hold's; both are set to the same period here, so what the clients
 * add over the empty bridge scales by period / 25 s at the defaults, and the
 * empty bridge's own cost stays.
 */
function idleRows (f: IdleFigures): void {
  const pct = (x: number): string => `${fmt(x * 100, 2)}%`
  const bridgeCpu = f.idle.cpu.bridge ?? NaN
  const emptyCpu = f.empty.cpu.bridge ?? NaN
  const bareCpu = f.bare.cpu['bare-ws'] ?? NaN
  const scale = f.beatMs / settings.idleDefaultBeatMs
  const target = f.transport === 'h2c' ? '<= 2% at 10,000' : ''
  const vs = (a: number, b: number): string => `${fmt(ratio(a, b))}x, ${a >= b ? '+' : ''}${fmt((a - b) * 100, 2)} pts`
  rows.push({ figure: 'bridge CPU while idle (% of one core)', size: `${f.clients}, ${f.transport}, ${f.beatMs / 1000} s beats`, bridge: pct(bridgeCpu), baseline: `${pct(bareCpu)} bare ws`, ratio: vs(bridgeCpu, bareCpu), target: scale === 1 ? target : '' })
  if (scale !== 1) {
    const scaled = emptyCpu + (bridgeCpu - emptyCpu) * scale
    rows.push({ figure: `  scaled to ${settings.idleDefaultBeatMs / 1000} s heartbeat and hold`, size: '', bridge: pct(scaled), baseline: `${pct(bareCpu * scale)} bare ws`, ratio: vs(scaled, bareCpu * scale), target })
  }
  rows.push({ figure: '  the bridge with no client', size: '', bridge: pct(emptyCpu), baseline: '', ratio: `${f.sockets} sockets, ${f.heldPolls} polls held, ${f.upstreamConnections} upstream conns`, target: '' })
  const pollsPerClientMinute = (f.idle.polls / f.clients) / (f.idle.seconds / 60)
  rows.push({ figure: '  emulator CPU (upstream work)', size: '', bridge: pct(f.idle.cpu.emulator ?? NaN), baseline: `${pct(f.empty.cpu.emulator ?? NaN)} no client`, ratio: `${fmt(pollsPerClientMinute)} polls per client-minute`, target: '' })
}

// ---------------------------------------------------------------- main

const scenarios: Array<[string, () => Promise<void>]> = [
  ['emulator', emulatorAlone],
  ['latency', latencyScenario],
  ['memory', memoryScenario],
  ['throughput', throughputScenario],
  ['upstream', upstreamScenario],
  ['compression', compressionScenario],
  ['idle-cpu', idleCpuScenario],
  ['storm', async () => { const out = await stormScenario({ full, log, ...stormArgs(args) }); rows.push(...out.rows); figures.storm = out.figures }],
  ['network', async () => { const out = await networkScenario({ full, log }); rows.push(...out.rows); figures.network = out.figures }]
]

const started = Date.now()
const load = loadavg()
for (const [name, fn] of scenarios) {
  if (only !== undefined && !only.includes(name)) continue
  try {
    await fn()
  } catch (err) {
    log(`${name} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
    figures[`${name}Error`] = String(err)
    process.exitCode = 1
  }
}

const text = rowTable(rows)
process.stdout.write(`\n${text}\n\n`)
const result = {
  when: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), kernel: release(), loadAverageAtStart: load },
  node: process.version,
  settings,
  seconds: (Date.now() - started) / 1000,
  table: rows,
  figures
}
const dir = `${root}bench/results`
mkdirSync(dir, { recursive: true })
const file = `${dir}/bench-${result.when.replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify(result, null, 2))
writeFileSync(`${dir}/latest.json`, JSON.stringify(result, null, 2))
log(`done in ${fmt(result.seconds, 0)} s; figures in ${file}`)
