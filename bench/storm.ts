/**
 * Reconnect storms: N clients, one socket each (own clientId and cid),
 * dropped at once and resumed, then the same after a restart of the bridge
 * (SIGTERM, a new process on the same port), against the same N clients
 * reconnecting at once to a bare `ws` server (bare-ws.ts): the floor of the
 * load generator and the loopback. The bridge keeps POLL_STARTS_PER_S at its
 * default (200); the emulator (storm-emulator.ts) counts the /events
 * requests it receives and the connections that start polling anew.
 *
 *   node bench/results/build/storm.js                quick: 2,000 clients
 *   node bench/results/build/storm.js --full         5,000 clients
 *   node bench/results/build/storm.js --clients=3000 --rate=400
 *
 * `--rate` is the events published per second in all, round robin over the
 * clients (default 400: an event per client every 5 s at 2,000, every 12.5 s
 * at 5,000), each carrying the client's next sequence number.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, ready, root, sleep, startBridge, startNode, TOKEN, type Proc } from './procs.js'
import { cliArgs, fmt, ratio, rowTable, summarize, type Row, type Summary } from './stats.js'
import type { Settled, StormClient, StormStatus } from './storm-clients.js'
import type { PollSample } from './storm-emulator.js'

const here = fileURLToPath(new URL('./', import.meta.url))

export interface StormOptions {
  /** 5,000 clients instead of 2,000. */
  full: boolean
  /** Overrides the number of clients. */
  clients?: number
  /** Events published per second in all (default 400). */
  eventsPerS?: number
  /** The restarted bridge takes its connections over from the stopped one through HANDOFF_FILE (default true). */
  handoff?: boolean
  /** The bridge's DRAIN_MS (default: its own default, 5 s). */
  drainMs?: number
  log: (msg: string) => void
}

/** POLL_STARTS_PER_S at its default: the pace the storm must keep upstream. */
export const POLL_STARTS_PER_S = 200
/** The SDK's first retry: full jitter below its 500 ms base. */
const JITTER_MS = 500
const HOLD_MS = 25_000
const STORM_TIMEOUT_MS = 180_000

/** What one storm showed, on one side. */
export interface StormFigures {
  kind: 'drop' | 'restart'
  clients: number
  /** ms from the drop (or the SIGTERM) until every socket was welcomed. */
  allWelcomedMs: number
  /** ms from the drop (or the SIGTERM) until the last welcome with resumed:true. */
  lastResumedMs: number
  /** From the mark to each client's welcome, and from the hello of the attempt that was welcomed. */
  welcome: Summary
  helloToWelcome: Summary
  /** From the mark to the start of the attempt that was welcomed: when the clients came (their backoff), apart from the server's wait. */
  attemptStart: Summary
  resumedFalse: number
  gaps: Record<string, number>
  notWelcomed: number
  failedAttempts: { total: number, mean: number, max: number }
  closeCodes: Record<string, number>
  /** Restart only: ms from SIGTERM until the old process exited and until the new one answered /readyz. */
  oldExitedMs?: number
  readyMs?: number
  /** Restart only: the closes by the old process (1012 over DRAIN_MS), from SIGTERM. */
  closes?: Summary
  /** Welcomes in the busiest second, and welcomes per second from the new process's start to the last. */
  peakWelcomesPerS: number
  /** Welcomes in each second from the mark. */
  welcomesPerS: number[]
  polls?: PollFigures
}

export interface PollFigures {
  /** /events requests a second over the 2 s before the storm (re-polls after events, holds ending). */
  steadyPerS: number
  /** /events requests from the storm's start to its end (the last welcome). */
  duringStorm: number
  /** The most /events requests in any 1 s of the storm, and the highest rate between two samples in a row (about 100 ms apart). */
  peakPerS: number
  peakPer100msAsPerS: number
  /** Restart only: connections that polled the emulator anew (first request since the old process exited), in all and at the most in 1 s. */
  newPolls?: number
  peakNewPollsPerS?: number
  /** Restart only: seconds from the new process's start until every connection had polled. */
  newPollsSpanS?: number
  /** Restart only: connections polling anew in each second from the new process's start. */
  newPollsPerS?: number[]
}

type Emu = Proc & { origin: string }

async function stormEmulator (): Promise<Emu> {
  const p = startNode('emulator', `${here}storm-emulator.js`, { EMULATOR_TOKENS: TOKEN, EMULATOR_HOLD_MS: String(HOLD_MS), EMULATOR_LOG_LEVEL: 'warn' }, { ipc: true })
  const { origin } = await ready<{ origin: string }>(p)
  return Object.assign(p, { origin })
}

async function stormClients (): Promise<Proc> {
  const p = startNode('storm-clients', `${here}storm-clients.js`, {}, { ipc: true })
  await ready(p)
  return p
}

async function bareWs (port: number): Promise<Proc & { ws: string }> {
  const p = startNode('bare-ws', `${here}bare-ws.js`, { PORT: String(port) }, { ipc: true })
  await ready(p)
  return Object.assign(p, { ws: `ws://127.0.0.1:${port}/` })
}

/** Where the stopped bridge hands its connections to the next one (HANDOFF_FILE), unless the run says --handoff=false. */
const HANDOFF = join(tmpdir(), `chatapi-bridge-bench-handoff-${process.pid}`)

/** The bridge with POLL_STARTS_PER_S at its default; the other settings as the rest of the bench has them (h2c polls). */
async function stormBridge (emu: Emu, port: number, o: BridgeSettings): Promise<Proc & { ws: string }> {
  return await startBridge('bridge', emu, {
    POLL_STARTS_PER_S: String(POLL_STARTS_PER_S),
    ...(o.handoff ? { HANDOFF_FILE: HANDOFF } : {}),
    ...(o.drainMs !== undefined ? { DRAIN_MS: String(o.drainMs) } : {})
  }, [], port)
}

interface BridgeSettings { handoff: boolean, drainMs: number | undefined }

async function exited (p: Proc, timeoutMs: number): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${p.name} did not exit within ${timeoutMs} ms of SIGTERM`)) }, timeoutMs)
    p.child.once('exit', () => { clearTimeout(timer); resolve() })
  })
}

/** Resolves when every client has been welcomed since the mark (or the timeout passed). */
async function allWelcomed (gen: Proc, n: number, timeoutMs = STORM_TIMEOUT_MS): Promise<StormStatus> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const s = await gen.call<StormStatus>({ cmd: 'status' })
    if (s.welcomed >= n || Date.now() > deadline) return s
    await sleep(50)
  }
}

/** Samples the emulator's counts every 100 ms until stopped. */
function sampler (emu: Emu): { stop: () => Promise<PollSample[]> } {
  const samples: PollSample[] = []
  let on = true
  const run = (async () => {
    while (on) {
      samples.push(await emu.call<PollSample>({ cmd: 'sample' }))
      await sleep(100)
    }
  })()
  return { stop: async () => { on = false; await run; return samples } }
}

/**
 * The most of `value` gained within any `windowMs` of the span from `from`
 * to `to`, as a rate a second: with a window of 1 s, the count in the busiest
 * second (a storm shorter than the window counts as one window).
 */
function peakRate (samples: PollSample[], from: number, to: number, value: (s: PollSample) => number, windowMs: number): number {
  const within = samples.filter((s) => s.at >= from - 100 && s.at <= to + 100)
  let best = 0
  for (let i = 0; i < within.length; i++) {
    const a = within[i] as PollSample
    let b = a
    for (let j = i + 1; j < within.length && (within[j] as PollSample).at <= a.at + windowMs; j++) b = within[j] as PollSample
    best = Math.max(best, (value(b) - value(a)) / (windowMs / 1000))
  }
  return best
}

/** The highest rate a second between two samples in a row, from `from` to `to`. */
function peakSampleRate (samples: PollSample[], from: number, to: number, value: (s: PollSample) => number): number {
  const within = samples.filter((s) => s.at >= from - 100 && s.at <= to + 100)
  let best = 0
  for (let i = 1; i < within.length; i++) {
    const a = within[i - 1] as PollSample
    const b = within[i] as PollSample
    if (b.at > a.at) best = Math.max(best, (value(b) - value(a)) / ((b.at - a.at) / 1000))
  }
  return best
}

/** The value of the sample nearest before `at`. */
function valueAt (samples: PollSample[], at: number, value: (s: PollSample) => number): number {
  let v = samples.length > 0 ? value(samples[0] as PollSample) : 0
  for (const s of samples) if (s.at <= at) v = value(s)
  return v
}

const count = (xs: Array<string | undefined>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const x of xs) if (x !== undefined) out[x] = (out[x] ?? 0) + 1
  return out
}

function figuresOf (kind: 'drop' | 'restart', per: StormClient[]): StormFigures {
  const welcomed = per.filter((c) => Number.isFinite(c.welcomeMs))
  const resumed = welcomed.filter((c) => c.resumed === true)
  const attempts = per.map((c) => c.failedAttempts)
  const bins = new Map<number, number>()
  for (const c of welcomed) bins.set(Math.floor(c.welcomeMs / 1000), (bins.get(Math.floor(c.welcomeMs / 1000)) ?? 0) + 1)
  const closes = per.map((c) => c.closedMs).filter(Number.isFinite)
  return {
    kind,
    clients: per.length,
    allWelcomedMs: welcomed.length === per.length ? Math.max(...welcomed.map((c) => c.welcomeMs)) : NaN,
    lastResumedMs: resumed.length > 0 ? Math.max(...resumed.map((c) => c.welcomeMs)) : NaN,
    welcome: summarize(welcomed.map((c) => c.welcomeMs)),
    helloToWelcome: summarize(welcomed.map((c) => c.helloToWelcomeMs)),
    attemptStart: summarize(welcomed.map((c) => c.welcomeMs - c.helloToWelcomeMs)),
    welcomesPerS: [...Array(welcomed.length === 0 ? 0 : Math.max(...bins.keys()) + 1).keys()].map((k) => bins.get(k) ?? 0),
    resumedFalse: welcomed.length - resumed.length,
    gaps: count(welcomed.map((c) => c.gap)),
    notWelcomed: per.length - welcomed.length,
    failedAttempts: { total: attempts.reduce((a, b) => a + b, 0), mean: attempts.reduce((a, b) => a + b, 0) / Math.max(1, per.length), max: Math.max(0, ...attempts) },
    closeCodes: count(per.map((c) => c.closeCode === undefined ? undefined : String(c.closeCode))),
    ...(kind === 'restart' ? { closes: summarize(closes) } : {}),
    peakWelcomesPerS: Math.max(0, ...bins.values())
  }
}

interface SideResult { drop: StormFigures, restart: StormFigures, settled?: Settled, connectS: number }

/** Connect, warm up, drop storm, restart storm, settle: on the bridge (with `emu`) or on the bare server. */
async function side (which: 'bridge' | 'bare', n: number, eventsPerS: number, settings: BridgeSettings, log: (m: string) => void): Promise<SideResult> {
  const port = await freePort()
  const emu = which === 'bridge' ? await stormEmulator() : undefined
  let server: Proc & { ws: string } = emu !== undefined ? await stormBridge(emu, port, settings) : await bareWs(port)
  const gen = await stormClients()
  let sample: { stop: () => Promise<PollSample[]> } | undefined
  try {
    log(`${which}: connecting ${n} clients${emu !== undefined ? ` (new polls paced at ${POLL_STARTS_PER_S}/s)` : ''}`)
    const { seconds: connectS } = await gen.call<{ seconds: number }>({ cmd: 'connect', url: server.ws, clients: n })
    if (emu !== undefined) {
      // Every connection has an event first: a feed that delivered nothing does not linger, and a cursor names an event.
      const each = await gen.call<{ missing: number, seconds: number }>({ cmd: 'publishEach', origin: emu.origin, token: TOKEN })
      log(`bridge: ${n} connected in ${fmt(connectS, 1)} s; a first event to each in ${fmt(each.seconds, 1)} s (${each.missing} missing); publishing ${eventsPerS}/s`)
      await gen.call({ cmd: 'startPublishing', origin: emu.origin, token: TOKEN, rate: eventsPerS })
      sample = sampler(emu)
    }
    await sleep(3000)

    // ---- drop storm
    log(`${which}: drop storm`)
    const drop = await gen.call<{ markedAt: number }>({ cmd: 'drop' })
    const dropStatus = await allWelcomed(gen, n)
    const dropEnd = dropStatus.markedAt + dropStatus.sinceMarkMs
    const dropPer = await gen.call<StormClient[]>({ cmd: 'storm' })
    const dropFigures = figuresOf('drop', dropPer)
    log(`${which}: drop storm: ${dropStatus.welcomed}/${n} welcomed in ${fmt(dropFigures.allWelcomedMs, 0)} ms, ${dropFigures.resumedFalse} resumed:false`)
    await sleep(3000)

    // ---- restart storm
    log(`${which}: restart storm (SIGTERM, a new process on port ${port})`)
    const restart = await gen.call<{ markedAt: number }>({ cmd: 'mark' })
    server.child.kill('SIGTERM')
    await exited(server, 30_000)
    const oldExitedMs = Date.now() - restart.markedAt
    if (emu !== undefined) await emu.call({ cmd: 'mark' })
    const newStart = Date.now()
    server = emu !== undefined ? await stormBridge(emu, port, settings) : await bareWs(port)
    const readyMs = Date.now() - restart.markedAt
    const restartStatus = await allWelcomed(gen, n)
    const restartEnd = restartStatus.markedAt + restartStatus.sinceMarkMs
    const restartPer = await gen.call<StormClient[]>({ cmd: 'storm' })
    const restartFigures = { ...figuresOf('restart', restartPer), oldExitedMs, readyMs }
    log(`${which}: restart storm: old process gone after ${fmt(oldExitedMs, 0)} ms, new one ready after ${fmt(readyMs, 0)} ms, ${restartStatus.welcomed}/${n} welcomed after ${fmt(restartFigures.allWelcomedMs, 0)} ms, ${restartFigures.resumedFalse} resumed:false`)

    let settled: Settled | undefined
    if (emu !== undefined) {
      await sleep(1000)
      const samples = await (sample as { stop: () => Promise<PollSample[]> }).stop()
      sample = undefined
      const polls = (s: PollSample): number => s.polls
      const steady = (from: number): number => (valueAt(samples, from, polls) - valueAt(samples, from - 2000, polls)) / 2
      dropFigures.polls = {
        steadyPerS: steady(drop.markedAt),
        duringStorm: valueAt(samples, dropEnd, polls) - valueAt(samples, drop.markedAt, polls),
        peakPerS: peakRate(samples, drop.markedAt, dropEnd, polls, 1000),
        peakPer100msAsPerS: peakSampleRate(samples, drop.markedAt, dropEnd, polls)
      }
      const afterMark = samples.filter((s) => s.markedAt >= newStart - 5000 && s.at >= newStart)
      const newKeys = (s: PollSample): number => s.newKeys
      const lastNew = afterMark.find((s) => s.newKeys >= n)
      restartFigures.polls = {
        steadyPerS: steady(restart.markedAt),
        duringStorm: valueAt(samples, restartEnd, polls) - valueAt(samples, restart.markedAt, polls),
        peakPerS: peakRate(samples, restart.markedAt, restartEnd, polls, 1000),
        peakPer100msAsPerS: peakSampleRate(samples, restart.markedAt, restartEnd, polls),
        newPolls: valueAt(afterMark, restartEnd + 1000, newKeys),
        peakNewPollsPerS: peakRate(afterMark, newStart, restartEnd, newKeys, 1000),
        newPollsSpanS: lastNew === undefined ? NaN : (lastNew.at - newStart) / 1000,
        newPollsPerS: Array.from({ length: Math.ceil((restartEnd - newStart) / 1000) + 1 }, (_, k) =>
          valueAt(afterMark, newStart + (k + 1) * 1000, newKeys) - valueAt(afterMark, newStart + k * 1000, newKeys))
      }
      log('bridge: settling: a last event to every client')
      settled = await gen.call<Settled>({ cmd: 'settle', origin: emu.origin, token: TOKEN, timeoutMs: 30_000 })
      log(`bridge: ${settled.published} events published, ${settled.lost} lost, ${settled.doubled} doubled, ${settled.unsettled} clients unsettled`)
    }
    return { drop: dropFigures, restart: restartFigures, settled, connectS }
  } finally {
    await sample?.stop()
    await gen.call({ cmd: 'close' }).catch(() => {})
    await gen.stop()
    await server.stop()
    await emu?.stop()
  }
}

/** The storm's own options from the command line: --clients, --rate, --handoff=false, --drain-ms. */
export function stormArgs (args: Map<string, string>): Pick<StormOptions, 'clients' | 'eventsPerS' | 'handoff' | 'drainMs'> {
  const num = (name: string): number | undefined => args.has(name) ? Number(args.get(name)) : undefined
  return { clients: num('clients'), eventsPerS: num('rate'), handoff: args.get('handoff') !== 'false', drainMs: num('drain-ms') }
}

export async function stormScenario (o: StormOptions): Promise<{ rows: Row[], figures: Record<string, unknown> }> {
  const n = o.clients ?? (o.full ? 5000 : 2000)
  const eventsPerS = o.eventsPerS ?? 400
  const settings: BridgeSettings = { handoff: o.handoff ?? true, drainMs: o.drainMs }
  const { handoff } = settings
  const bridge = await side('bridge', n, eventsPerS, settings, o.log).finally(() => { rmSync(HANDOFF, { force: true }) })
  const bare = await side('bare', n, eventsPerS, settings, o.log)
  const rows: Row[] = []
  const size = String(n)
  const ms3 = (s: Summary): string => `${fmt(s.p50, 0)} / ${fmt(s.p99, 0)} / ${fmt(s.max, 0)}`
  const x = (a: number, b: number): string => `${fmt(ratio(a, b))}x`
  const row = (figure: string, b: string, base: string, r: string, target = ''): void => { rows.push({ figure, size: figure.startsWith(' ') ? '' : size, bridge: b, baseline: base, ratio: r, target }) }
  const s = (msv: number): string => fmt(msv / 1000, 2)
  for (const kind of ['drop', 'restart'] as const) {
    const b = bridge[kind]
    const a = bare[kind]
    if (kind === 'drop') {
      row('drop storm: all welcomed and resumed (s)', s(b.allWelcomedMs), `${s(a.allWelcomedMs)} bare ws`, x(b.allWelcomedMs, a.allWelcomedMs), n >= 5000 ? '<= 1 s' : '<= 1 s at 5,000')
    } else {
      row(`restart storm: all welcomed and resumed after SIGTERM (s)${handoff ? ', HANDOFF_FILE' : ', no handoff'}${settings.drainMs !== undefined ? `, DRAIN_MS=${settings.drainMs}` : ''}`, s(b.allWelcomedMs), `${s(a.allWelcomedMs)} bare ws`, x(b.allWelcomedMs, a.allWelcomedMs), n >= 5000 ? '<= 10 s' : '<= 10 s at 5,000')
      row('  old process exited / new one ready after SIGTERM (s)', `${s(b.oldExitedMs ?? NaN)} / ${s(b.readyMs ?? NaN)}`, `${s(a.oldExitedMs ?? NaN)} / ${s(a.readyMs ?? NaN)}`, `closes by the old process p50/max ${s(b.closes?.p50 ?? NaN)} / ${s(b.closes?.max ?? NaN)} s`)
      row('  all welcomed after the new process was ready (s)', s(b.allWelcomedMs - (b.readyMs ?? NaN)), s(a.allWelcomedMs - (a.readyMs ?? NaN)), x(b.allWelcomedMs - (b.readyMs ?? NaN), a.allWelcomedMs - (a.readyMs ?? NaN)))
    }
    row('  welcome after the storm began p50/p99/max (ms)', ms3(b.welcome), ms3(a.welcome), `p99 ${x(b.welcome.p99, a.welcome.p99)}`)
    row('  the attempt welcomed began p50/p99/max (ms)', ms3(b.attemptStart), ms3(a.attemptStart), 'after the storm began: the clients\' backoff')
    row('  hello to welcome p50/p99/max (ms)', ms3(b.helloToWelcome), ms3(a.helloToWelcome), `p99 ${x(b.helloToWelcome.p99, a.helloToWelcome.p99)}`)
    row('  welcomes in the busiest second', fmt(b.peakWelcomesPerS, 0), fmt(a.peakWelcomesPerS, 0), x(b.peakWelcomesPerS, a.peakWelcomesPerS))
    row('  resumed:false / not welcomed', `${b.resumedFalse} / ${b.notWelcomed}`, `${a.notWelcomed} not welcomed`, Object.entries(b.gaps).map(([k, v]) => `${v}: ${k}`).join('; '), '0')
    row('  failed attempts per client mean / max', `${fmt(b.failedAttempts.mean)} / ${b.failedAttempts.max}`, `${fmt(a.failedAttempts.mean)} / ${a.failedAttempts.max}`, '')
    const p = b.polls
    if (p !== undefined) {
      row('  upstream polls during the storm (all /events)', fmt(p.duringStorm, 0), `${fmt(p.steadyPerS, 0)}/s before`, `peak ${fmt(p.peakPerS, 0)}/s in 1 s, ${fmt(p.peakPer100msAsPerS, 0)}/s over 100 ms`)
      if (p.newPolls !== undefined) {
        row('  new upstream polls (connections polling anew)', fmt(p.newPolls, 0), '', `peak ${fmt(p.peakNewPollsPerS ?? NaN, 0)}/s in 1 s; all in ${fmt(p.newPollsSpanS ?? NaN, 1)} s`, `<= ${POLL_STARTS_PER_S}/s`)
      }
    }
  }
  const st = bridge.settled
  if (st !== undefined) {
    row('events lost / doubled after both storms', `${st.lost} / ${st.doubled}`, '', `${st.published} published at ${eventsPerS}/s; ${st.outOfOrder} out of order, ${st.unsettled} unsettled`, '0 / 0')
  }
  return { rows, figures: { clients: n, eventsPerS, handoff, drainMs: settings.drainMs, eventEveryS: n / eventsPerS, jitterMs: JITTER_MS, pollStartsPerS: POLL_STARTS_PER_S, holdMs: HOLD_MS, bridge, bare } }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = cliArgs()
  const log = (msg: string): void => { process.stderr.write(`[storm ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }
  const out = await stormScenario({ full: args.get('full') === 'true', ...stormArgs(args), log })
  const text = rowTable(out.rows)
  process.stdout.write(`\n${text}\n\n${JSON.stringify(out, null, 2)}\n`)
  const dir = `${root}bench/results`
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/storm-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, JSON.stringify({ when: new Date().toISOString(), node: process.version, ...out }, null, 2))
}
