/**
 * What a user feels on a real network: the bench's parties behind userspace
 * delay proxies (delay-proxy.ts, in a child process): client <-> bridge 50 ms
 * each way, bridge <-> upstream 20 ms each way, and front ends polling the
 * upstream directly 70 ms each way (the same one-way path). The publisher
 * (the agent) is at the upstream: it publishes straight to the emulator.
 *
 *   npm run build && npx tsc -p bench && node bench/results/build/network.js [--full]
 *
 * Clients and publisher live in this process, so an event's latency is one
 * clock: the `sentAt` in its body against the time the client has it.
 * Scenarios: single events (one to a client, then about a second's pause)
 * and bursts of 5 agent messages 20 ms apart to one client (then a pause);
 * every client of both kinds runs its own loop, at the same time. The
 * figures: latency p50/p99 of single events, of the first message of a
 * burst and of messages 2-5, bridge against direct, and every message of a
 * burst against the one-way path (70 ms). A trace phase then follows one
 * client of each kind through bursts, with the upstream poll timeline read
 * from the bridge <-> upstream proxy, to show what later messages wait for.
 */
import { fileURLToPath, pathToFileURL } from 'node:url'
import { mkdirSync, writeFileSync } from 'node:fs'
import { Client, Pool } from 'undici'
import WebSocket from 'ws'
import { ready, root, sleep, startBridge, startEmulator, startNode, TOKEN, until, type Proc } from './procs.js'
import { fmt, ratio, rowTable, summarize, type Row, type Summary } from './stats.js'
import { measureAccuracy, accuracyTable, type Accuracy, type TraceRecord } from './delay-proxy.js'

const here = fileURLToPath(new URL('./', import.meta.url))
const now = (): number => performance.timeOrigin + performance.now()

export interface NetworkOptions {
  full: boolean
  log: (msg: string) => void
  /** Clients of each kind (default 20). */
  clients?: number
  /** One-way delays in ms. */
  clientBridgeMs?: number
  bridgeUpstreamMs?: number
  directMs?: number
}

type Kind = 'ws' | 'direct'
type Phase = 'warm' | 'single' | 'burst' | 'trace'

interface Sample { kind: Kind, phase: Phase, seq: number, latency: number, client: number, burst: number, at: number }

const BURST = 5
const BURST_GAP_MS = 20

export async function networkScenario (o: NetworkOptions): Promise<{ rows: Row[], figures: Record<string, unknown> }> {
  const n = o.clients ?? 20
  const d = { clientBridge: o.clientBridgeMs ?? 50, bridgeUpstream: o.bridgeUpstreamMs ?? 20, direct: o.directMs ?? 70 }
  const oneWay = d.clientBridge + d.bridgeUpstream
  const seconds = { single: o.full ? 60 : 15, burst: o.full ? 60 : 20, traceBursts: o.full ? 20 : 8 }
  const rows: Row[] = []
  const figures: Record<string, unknown> = { delays: d, clients: n, seconds }
  const log = o.log

  const netem = startNode('netem', `${here}delay-proxy.js`, {}, { ipc: true })
  let emu: (Proc & { origin: string }) | undefined
  let br: (Proc & { ws: string }) | undefined
  const sockets: WebSocket[] = []
  const pollers: Client[] = []
  let polling = true
  try {
    await ready(netem)
    const proxy = async (target: { host: string, port: number }, delayMs: number, trace?: 'h2' | 'h1'): Promise<number> =>
      (await netem.call<{ port: number }>({ cmd: 'start', target, delayMs, trace })).port

    // ------------------------------------------------ the proxy's own accuracy, in the child the scenario uses
    log('network: delay proxy accuracy on loopback (0, 20, 50, 70 ms)')
    const accuracy: Accuracy[] = await measureAccuracy(async (target, delayMs) => {
      const port = await proxy(target, delayMs)
      return { port, close: async () => { await netem.call({ cmd: 'close', port }) } }
    }, [0, d.bridgeUpstream, d.clientBridge, d.direct])
    figures.proxyAccuracy = accuracy
    log(`\n${accuracyTable(accuracy)}`)

    // ------------------------------------------------ the parties
    emu = await startEmulator(25_000)
    const emuPort = Number(new URL(emu.origin).port)
    const upPort = await proxy({ host: '127.0.0.1', port: emuPort }, d.bridgeUpstream, 'h2')
    br = await startBridge('bridge', emu, { UPSTREAM_URL: `http://127.0.0.1:${upPort}/chatapi` })
    const brPort = Number(new URL(br.ws).port)
    const wsPort = await proxy({ host: '127.0.0.1', port: brPort }, d.clientBridge)
    const directPort = await proxy({ host: '127.0.0.1', port: emuPort }, d.direct, 'h1')
    const emuOrigin = emu.origin

    const samples: Sample[] = []
    const seen = { ws: new Set<string>(), direct: new Set<string>() }
    const dup = { ws: 0, direct: 0 }
    const expected = { ws: new Set<string>(), direct: new Set<string>() }
    let errors = 0
    const directRequests: number[] = []
    /** The trace poller's own request times: sent, answered (as it got them). */
    const directTimeline: Array<{ sent: number, received: number, events: number }> = []

    const onEvent = (kind: Kind, e: { sentAt?: unknown, phase?: unknown, seq?: unknown, client?: unknown, burst?: unknown } | undefined, at: number): void => {
      if (e === undefined || typeof e.sentAt !== 'number') return
      const key = `${String(e.burst)}:${String(e.seq)}`
      if (seen[kind].has(key)) { dup[kind]++; return }
      seen[kind].add(key)
      samples.push({ kind, phase: e.phase as Phase, seq: e.seq as number, latency: at - e.sentAt, client: e.client as number, burst: e.burst as number, at })
    }

    // ------------------------------------------------ clients: through the bridge, and direct
    log(`network: ${n} WebSocket clients through the bridge (${d.clientBridge} + ${d.bridgeUpstream} ms), ${n} direct pollers (${d.direct} ms)`)
    const wsIds: string[] = []
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/v1/ws`, 'chatapi-bridge.v1', { perMessageDeflate: false })
      const welcome = await new Promise<Record<string, string>>((resolve, reject) => {
        ws.once('error', reject)
        ws.once('open', () => { ws.send(JSON.stringify({ type: 'hello' })) })
        ws.once('message', (data) => {
          const f = JSON.parse(String(data)) as Record<string, string>
          if (f.type === 'welcome') resolve(f)
          else reject(new Error(`expected welcome, got ${String(data).slice(0, 200)}`))
        })
      })
      ws.on('error', () => { errors++ })
      ws.on('message', (data) => {
        const at = now()
        const f = JSON.parse(String(data)) as { type: string, event?: { event?: Record<string, unknown> } }
        if (f.type === 'event') onEvent('ws', f.event?.event, at)
      })
      sockets.push(ws)
      wsIds.push(welcome.clientId as string)
    }
    const directIds: string[] = []
    for (let i = 0; i < n; i++) {
      const clientId = `direct-${process.pid}-${i}`
      directIds.push(clientId)
      const client = new Client(`http://127.0.0.1:${directPort}`, { keepAliveTimeout: 120_000, headersTimeout: 120_000, bodyTimeout: 120_000 })
      pollers.push(client)
      directRequests.push(0)
      // As loadgen's direct pollers: by the server-side cursor of (clientId, cid), re-polled right after each answer.
      const path = `/chatapi/${TOKEN}/events?clientId=${encodeURIComponent(clientId)}&cid=tab-0&all=true`
      void (async () => {
        while (polling) {
          try {
            const sent = now()
            directRequests[i] = (directRequests[i] ?? 0) + 1
            const res = await client.request({ method: 'GET', path })
            const text = await res.body.text()
            const at = now()
            if (res.statusCode !== 200) { errors++; continue }
            const body = JSON.parse(text) as { events: Array<{ event?: Record<string, unknown> }> }
            if (i === 0) directTimeline.push({ sent, received: at, events: body.events.length })
            for (const e of body.events) onEvent('direct', e.event, at)
          } catch {
            if (!polling) return
            errors++
            await sleep(100)
          }
        }
      })()
    }
    const stats = async (): Promise<{ activePolls: number, requests: Record<string, number> }> =>
      await (await fetch(`${emuOrigin}/operator/stats`)).json() as { activePolls: number, requests: Record<string, number> }
    await until(async () => (await stats()).activePolls >= 2 * n, 30_000, `${2 * n} held polls`, 100)

    // ------------------------------------------------ the publisher, at the upstream
    const pool = new Pool(emuOrigin, { connections: 16, pipelining: 1 })
    let burstId = 0
    let published = 0
    const publish = (kind: Kind, client: number, phase: Phase, burst: number, seq: number): void => {
      const clientId = (kind === 'ws' ? wsIds : directIds)[client] as string
      expected[kind].add(`${burst}:${seq}`)
      const body = JSON.stringify({ clientId, type: 'agentResponse', body: { text: `message ${seq + 1}`, sentAt: now(), phase, burst, seq, client } })
      published++
      pool.request({ method: 'POST', path: `/operator/${TOKEN}/publish`, headers: { 'content-type': 'application/json' }, body })
        .then(async (res) => { await res.body.dump(); if (res.statusCode !== 200) errors++ }, () => { errors++ })
    }
    const burstTo = async (kind: Kind, client: number, phase: Phase): Promise<void> => {
      const id = ++burstId
      const t0 = now()
      for (let k = 0; k < BURST; k++) {
        const wait = t0 + k * BURST_GAP_MS - now()
        if (wait > 0) await sleep(wait)
        publish(kind, client, phase, id, k)
      }
    }
    const pause = async (): Promise<void> => { await sleep(900 + Math.random() * 300) }
    /** Every client of both kinds in its own loop until `seconds` are over. */
    const loops = async (phase: 'single' | 'burst', secs: number): Promise<void> => {
      const end = now() + secs * 1000
      await Promise.all((['ws', 'direct'] as const).flatMap((kind) => Array.from({ length: n }, async (_, i) => {
        await sleep(Math.random() * 1000)
        while (now() < end) {
          if (phase === 'single') publish(kind, i, phase, ++burstId, 0)
          else await burstTo(kind, i, phase)
          await pause()
        }
      })))
      await sleep(1500)
    }

    // Warm-up: the bridge learns the upstream (inclusive bound, ms stamps, holds) and, after 20 clean
    // re-reads on the channel, stops re-reading recent events after each burst.
    log('network: warm-up')
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < n; i++) { publish('ws', i, 'warm', ++burstId, 0); publish('direct', i, 'warm', ++burstId, 0) }
      await sleep(1800)
    }

    const polls = async (): Promise<{ emulator: number, direct: number }> =>
      ({ emulator: (await stats()).requests.events ?? 0, direct: directRequests.reduce((a, b) => a + b, 0) })

    log(`network: single events, ${seconds.single} s`)
    const p0 = await polls()
    await loops('single', seconds.single)
    const p1 = await polls()
    log(`network: bursts of ${BURST} messages ${BURST_GAP_MS} ms apart, ${seconds.burst} s`)
    const bursts0 = burstId
    await loops('burst', seconds.burst)
    const p2 = await polls()
    const burstSamples = samples.filter((s) => s.phase === 'burst')
    const burstsBy = { ws: new Set(burstSamples.filter((s) => s.kind === 'ws').map((s) => s.burst)).size, direct: new Set(burstSamples.filter((s) => s.kind === 'direct').map((s) => s.burst)).size }
    void bursts0

    // ------------------------------------------------ trace: one client of each kind, bursts 1.2 s apart
    log(`network: trace, ${seconds.traceBursts} bursts to one client of each kind`)
    directTimeline.length = 0
    const traceStart = now()
    const traceBursts: Array<{ kind: Kind, id: number }> = []
    for (let b = 0; b < seconds.traceBursts; b++) {
      traceBursts.push({ kind: 'ws', id: burstId + 1 })
      const wsBurst = burstTo('ws', 0, 'trace')
      traceBursts.push({ kind: 'direct', id: burstId + 1 })
      await Promise.all([wsBurst, burstTo('direct', 0, 'trace')])
      await sleep(1200)
    }
    await sleep(500)
    const upTrace = (await netem.call<TraceRecord[]>({ cmd: 'trace', port: upPort })).filter((r) => (r.answered ?? Infinity) >= traceStart)
    const upStats = await netem.call({ cmd: 'stats', port: upPort })
    await pool.close()

    // ------------------------------------------------ figures
    const lat = (kind: Kind, phase: Phase, seqs?: number[]): Summary =>
      summarize(samples.filter((s) => s.kind === kind && s.phase === phase && (seqs === undefined || seqs.includes(s.seq))).map((s) => s.latency))
    const groups = {
      single: { ws: lat('ws', 'single'), direct: lat('direct', 'single') },
      first: { ws: lat('ws', 'burst', [0]), direct: lat('direct', 'burst', [0]) },
      later: { ws: lat('ws', 'burst', [1, 2, 3, 4]), direct: lat('direct', 'burst', [1, 2, 3, 4]) },
      all: { ws: lat('ws', 'burst'), direct: lat('direct', 'burst') }
    }
    const bySeq = Array.from({ length: BURST }, (_, k) => ({ seq: k + 1, ws: lat('ws', 'burst', [k]), direct: lat('direct', 'burst', [k]) }))
    const lost = (kind: Kind): number => [...expected[kind]].filter((k) => !seen[kind].has(k)).length
    const pair = (s: Summary): string => `${fmt(s.p50, 1)} / ${fmt(s.p99, 1)}`
    const size = `${n} + ${n} clients`
    const push = (figure: string, g: { ws: Summary, direct: Summary }, target = ''): void => {
      rows.push({ figure, size, bridge: pair(g.ws), baseline: `${pair(g.direct)} direct`, ratio: `${fmt(ratio(g.ws.p50, g.direct.p50))}x / ${fmt(ratio(g.ws.p99, g.direct.p99))}x`, target })
    }
    const net = `${d.clientBridge}+${d.bridgeUpstream} ms vs ${d.direct} ms`
    push(`network (${net}): single event p50 / p99 (ms)`, groups.single)
    push('  burst of 5, 20 ms apart: first message', groups.first, `p50 <= ${fmt(oneWay * 1.15, 0)}`)
    push('  burst: messages 2-5', groups.later, `p50 <= ${fmt(oneWay * 1.15, 0)}`)
    for (const s of bySeq.slice(1)) push(`    message ${s.seq}`, s)
    const worst = (kind: Kind): number => Math.max(...bySeq.map((s) => s[kind].p50))
    rows.push({ figure: '  every burst message vs the one-way path', size: `${oneWay} ms`, bridge: `${fmt(worst('ws'), 1)} worst p50`, baseline: `${fmt(worst('direct'), 1)} direct`, ratio: `${fmt(ratio(worst('ws'), oneWay))}x one-way (direct ${fmt(ratio(worst('direct'), oneWay))}x)`, target: '<= 1.15x' })
    const perBurst = { ws: ((p2.emulator - p1.emulator) - (p2.direct - p1.direct)) / Math.max(1, burstsBy.ws), direct: (p2.direct - p1.direct) / Math.max(1, burstsBy.direct) }
    const perSingle = { ws: ((p1.emulator - p0.emulator) - (p1.direct - p0.direct)) / Math.max(1, groups.single.ws.n), direct: (p1.direct - p0.direct) / Math.max(1, groups.single.direct.n) }
    rows.push({ figure: '  upstream /events requests per burst', size, bridge: fmt(perBurst.ws, 2), baseline: `${fmt(perBurst.direct, 2)} direct`, ratio: `${fmt(ratio(perBurst.ws, perBurst.direct))}x`, target: '' })
    rows.push({ figure: '  upstream /events requests per single event', size, bridge: fmt(perSingle.ws, 2), baseline: `${fmt(perSingle.direct, 2)} direct`, ratio: `${fmt(ratio(perSingle.ws, perSingle.direct))}x`, target: '<= 1.1' })
    rows.push({ figure: '  events lost / twice', size, bridge: `${lost('ws')} / ${dup.ws}`, baseline: `${lost('direct')} / ${dup.direct} direct`, ratio: `${errors} errors`, target: '0 / 0' })
    const acc = (ms: number): Accuracy | undefined => accuracy.find((a) => a.delayMs === ms)
    const a0 = acc(0)
    rows.push({
      figure: '  delay proxy: added one-way p50 / p99 (ms)',
      size: accuracy.map((a) => `${a.delayMs}`).join(' / ') + ' ms',
      bridge: accuracy.map((a) => fmt(a.addedP50, 2)).join(' / '),
      baseline: `${fmt(a0?.direct.p50 ?? NaN, 2)} loopback`,
      ratio: accuracy.map((a) => fmt(a.addedP99, 2)).join(' / '),
      target: 'D +- 1-2'
    })

    figures.latency = groups
    figures.bySeq = bySeq
    figures.requests = { perBurst, perSingle, single: { emulator: p1.emulator - p0.emulator, direct: p1.direct - p0.direct }, burst: { emulator: p2.emulator - p1.emulator, direct: p2.direct - p1.direct, bursts: burstsBy } }
    figures.integrity = { lost: { ws: lost('ws'), direct: lost('direct') }, twice: dup, errors, published }
    figures.trace = analyseTrace(samples.filter((s) => s.phase === 'trace'), traceBursts, upTrace, directTimeline, d)
    figures.upstreamProxy = upStats
    return { rows, figures }
  } finally {
    polling = false
    for (const s of sockets) s.terminate()
    await Promise.all(pollers.map(async (c) => { await c.destroy() }))
    await Promise.all([br?.stop(), emu?.stop(), netem.stop()])
  }
}

/**
 * What each message of a traced burst waited for. Through the bridge: the
 * upstream poll that answered it (from the bridge <-> upstream proxy: when
 * each poll left the bridge, reached the upstream, was answered, came back),
 * and the gap between an answer leaving the upstream and the next poll
 * reaching it, when the upstream holds no poll of that connection. Direct:
 * the poller's own request times, shifted by the one-way delay.
 */
function analyseTrace (samples: Sample[], bursts: Array<{ kind: Kind, id: number }>, up: TraceRecord[], direct: Array<{ sent: number, received: number, events: number }>, d: { clientBridge: number, bridgeUpstream: number, direct: number }): Record<string, unknown> {
  const polls = up.filter((r) => r.answered !== undefined).sort((a, b) => (a.arrived - b.arrived))
  const out: Record<string, unknown> = {}
  const perBurst: Array<Record<string, unknown>> = []
  const waits = { ws: { first: [] as number[], later: [] as number[] }, direct: { first: [] as number[], later: [] as number[] } }
  const gaps: number[] = []
  const quick: number[] = []
  let pollsInBursts = 0
  for (const b of bursts) {
    const msgs = samples.filter((s) => s.burst === b.id).sort((x, y) => x.seq - y.seq)
    if (msgs.length === 0) continue
    const sent = msgs.map((m) => m.at - m.latency)
    const t0 = sent[0] as number
    if (b.kind === 'ws') {
      // This client's polls from just before the burst to the end of the burst's deliveries.
      const last = Math.max(...msgs.map((m) => m.at))
      const mine = polls.filter((p) => (p.answered as number) >= t0 - 1 && p.arrived <= last)
      pollsInBursts += mine.length
      const timeline = mine.map((p) => ({
        sent: +(p.sent - t0).toFixed(1),
        arrived: +(p.arrived - t0).toFixed(1),
        answered: +((p.answered as number) - t0).toFixed(1),
        received: +((p.received as number) - t0).toFixed(1),
        held: +((p.answered as number) - p.arrived).toFixed(1)
      }))
      for (let i = 1; i < mine.length; i++) gaps.push((mine[i] as TraceRecord).arrived - (mine[i - 1] as TraceRecord).answered!)
      for (const p of mine) if ((p.answered as number) - p.arrived < 2) quick.push(1)
      const carried = msgs.map((m, k) => {
        const s = sent[k] as number
        const p = mine.find((q) => (q.answered as number) >= s)
        const wait = p === undefined ? NaN : (p.answered as number) - s
        ;(k === 0 ? waits.ws.first : waits.ws.later).push(wait)
        return { seq: k + 1, publishedAt: +(s - t0).toFixed(1), latency: +m.latency.toFixed(1), waitedForPoll: +wait.toFixed(1) }
      })
      perBurst.push({ kind: 'ws', burst: b.id, messages: carried, polls: timeline })
    } else {
      const carried = msgs.map((m, k) => {
        const s = sent[k] as number
        // The answer that carried it left the upstream one way before the poller had it.
        const a = direct.find((r) => r.received - d.direct >= s - 1 && r.events > 0)
        const wait = a === undefined ? NaN : a.received - d.direct - s
        ;(k === 0 ? waits.direct.first : waits.direct.later).push(wait)
        return { seq: k + 1, publishedAt: +(s - t0).toFixed(1), latency: +m.latency.toFixed(1), waitedForPoll: +wait.toFixed(1) }
      })
      perBurst.push({ kind: 'direct', burst: b.id, messages: carried })
    }
  }
  const nWs = bursts.filter((b) => b.kind === 'ws').length
  out.summary = {
    bridgePollsPerBurst: pollsInBursts / Math.max(1, nWs),
    bridgePollsAnsweredAtOnce: quick.length / Math.max(1, nWs),
    gapAnswerToNextPollMs: summarize(gaps),
    waitForPollMs: {
      ws: { first: summarize(waits.ws.first), later: summarize(waits.ws.later) },
      direct: { first: summarize(waits.direct.first), later: summarize(waits.direct.later) }
    }
  }
  out.bursts = perBurst
  return out
}

// ---------------------------------------------------------------- standalone

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const full = process.argv.includes('--full')
  const log = (msg: string): void => { process.stderr.write(`[network ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }
  const started = Date.now()
  const { rows, figures } = await networkScenario({ full, log })
  const text = rowTable(rows)
  process.stdout.write(`\n${text}\n\n`)
  const result = { when: new Date().toISOString(), node: process.version, mode: full ? 'full' : 'quick', seconds: (Date.now() - started) / 1000, table: rows, figures }
  const json = JSON.stringify(result, null, 2)
  process.stdout.write(`${json}\n`)
  const dir = `${root}bench/results`
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/network-latest.json`, json)
  log(`done in ${fmt(result.seconds, 0)} s; figures in ${dir}/network-latest.json`)
}
