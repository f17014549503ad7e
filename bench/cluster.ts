/**
 * The cluster benchmark: the same clients through one bridge on its own and
 * through three bridges sharing a Redis (each client on one of the three),
 * in one run, against one emulator. It needs `redis-server` on the PATH and
 * starts one of its own on a free port.
 *
 *   npm run build && tsc -p bench && node bench/results/build/cluster.js [--clients=1000] [--seconds=5] [--idle-seconds=30]
 *
 * Figures: event latency p50/p99/max on each side; upstream polls held (one
 * per client on both sides: the cluster must not poll more); the bridges'
 * CPU during the window; and what Redis pays per active connection: memory
 * (used_memory growth, and MEMORY USAGE of the connections' streams and
 * leases) and commands per second, idle and under the event rate. The idle
 * figure is counted over several leases (`--idle-seconds`), since some of
 * the cluster's work recurs less often than once a lease, and comes with
 * the commands that make it up (INFO commandstats: Redis counts the
 * commands inside a script as well as the script's call).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { Redis } from 'ioredis'
import { freePort, root, sleep, startBridge, startEmulator, startLoadgen, TOKEN, until, usage, type Proc } from './procs.js'
import { fmt, ratio, summarize, table, type Summary } from './stats.js'
import type { Collected } from './loadgen.js'

const PREFIX = 'bench:'

const args = new Map(process.argv.slice(2).map((a) => {
  const [k, v] = a.replace(/^--/, '').split('=')
  return [k as string, v ?? 'true']
}))
const settings = {
  clients: Number(args.get('clients') ?? 1000),
  instances: 3,
  latencyRate: 200,
  seconds: Number(args.get('seconds') ?? 5),
  idleSeconds: Number(args.get('idle-seconds') ?? 30),
  leaseMs: 5000,
  holdMs: 25_000
}

function log (msg: string): void {
  process.stderr.write(`[bench cluster ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

async function startRedis (): Promise<{ child: ChildProcess, url: string }> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => { if (l.includes('Ready to accept connections')) resolve() })
    child.once('error', () => { reject(new Error('redis-server could not start: is it installed?')) })
    child.once('exit', (code) => { reject(new Error(`redis-server exited ${String(code)}`)) })
  })
  return { child, url: `redis://127.0.0.1:${port}` }
}

const emulator = async (): Promise<Proc & { origin: string }> => await startEmulator(settings.holdMs)
const bridge = startBridge
const loadgen = startLoadgen

async function activePolls (emu: { origin: string }): Promise<number> {
  return (await (await fetch(`${emu.origin}/operator/stats`)).json() as { activePolls: number }).activePolls
}

async function window (gen: Proc, emu: { origin: string }, bridges: Proc[]): Promise<{ collected: Collected, cpu: number[] }> {
  const before = bridges.map((b) => usage(b.pid).cpuSeconds)
  const started = performance.now()
  await gen.call({ cmd: 'measure', parse: true })
  await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate: settings.latencyRate, seconds: settings.seconds, concurrency: 64 })
  await sleep(500)
  const collected = await gen.call<Collected>({ cmd: 'collect' })
  const seconds = (performance.now() - started) / 1000
  return { collected, cpu: bridges.map((b, i) => (usage(b.pid).cpuSeconds - (before[i] as number)) / seconds) }
}

interface Side { latency: Summary, polls: number, cpu: number[], events: number, errors: number }

async function alone (): Promise<Side> {
  const emu = await emulator()
  const br = await bridge('bridge', emu, {})
  const gen = await loadgen()
  try {
    await gen.call({ cmd: 'connect', url: br.ws, clients: settings.clients, tabs: 1, shareCid: false })
    await until(async () => await activePolls(emu) >= settings.clients, 120_000, 'held polls', 200)
    const { collected, cpu } = await window(gen, emu, [br])
    return { latency: summarize(collected.latencies), polls: await activePolls(emu), cpu, events: collected.events, errors: collected.errors }
  } finally {
    await Promise.all([gen, br, emu].map(async (p) => { await p.stop() }))
  }
}

interface RedisFigures {
  usedBytes: number
  streamBytes: number
  leaseBytes: number
  streams: number
  idleOpsPerS: number
  /** Idle commands per second by name (evalsha counted apart from the commands its scripts run). */
  idleByCommand: Record<string, number>
  busyOpsPerS: number
  /** Commands per second by name under the event rate. */
  busyByCommand: Record<string, number>
}

async function keysOf (r: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    keys.push(...found)
  } while (cursor !== '0')
  return keys
}

async function memoryOf (r: Redis, keys: string[]): Promise<number> {
  let total = 0
  for (const k of keys) total += Number(await r.memory('USAGE', k) ?? 0)
  return total
}

async function stat (r: Redis, section: string, field: string): Promise<number> {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(await r.info(section))
  return Number(m?.[1] ?? 0)
}

/** Calls of each command since the last CONFIG RESETSTAT. */
async function commandCalls (r: Redis): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1] as string] = Number(m[2])
  return calls
}

/** Calls per second of each command but the bench's own (INFO, CONFIG). */
function perSecond (calls: Record<string, number>, seconds: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, n] of Object.entries(calls)) if (name !== 'info' && !name.startsWith('config') && n > 0) out[name] = n / seconds
  return out
}

async function clustered (redisUrl: string): Promise<Side & { redis: RedisFigures }> {
  const r = new Redis(redisUrl)
  const emu = await emulator()
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: PREFIX, REDIS_LEASE_MS: String(settings.leaseMs) }
  const bridges = await Promise.all(Array.from({ length: settings.instances }, async (_, i) => await bridge(`bridge-${i + 1}`, emu, env)))
  const gen = await loadgen()
  try {
    const usedBefore = await stat(r, 'memory', 'used_memory')
    const per = Math.ceil(settings.clients / bridges.length)
    for (const br of bridges) await gen.call({ cmd: 'connect', url: br.ws, clients: per, tabs: 1, shareCid: false })
    const clients = per * bridges.length
    await until(async () => await activePolls(emu) >= clients, 120_000, 'held polls', 200)

    // The bench's own Redis: its counters may be reset. What the bench itself sends in the window (INFO) is left out.
    await r.config('RESETSTAT')
    const idle0 = await stat(r, 'stats', 'total_commands_processed')
    await sleep(settings.idleSeconds * 1000)
    const idleOpsPerS = (await stat(r, 'stats', 'total_commands_processed') - idle0 - 1) / settings.idleSeconds
    const idleByCommand = perSecond(await commandCalls(r), settings.idleSeconds)
    await r.config('RESETSTAT')
    const busy0 = await stat(r, 'stats', 'total_commands_processed')
    const started = performance.now()
    const { collected, cpu } = await window(gen, emu, bridges)
    const busySeconds = (performance.now() - started) / 1000
    const busyOpsPerS = (await stat(r, 'stats', 'total_commands_processed') - busy0) / busySeconds
    const busyByCommand = perSecond(await commandCalls(r), busySeconds)

    const streams = await keysOf(r, `${PREFIX}feed:*:events`)
    const leases = await keysOf(r, `${PREFIX}feed:*:lease`)
    const fences = await keysOf(r, `${PREFIX}feed:*:fence`)
    return {
      latency: summarize(collected.latencies),
      polls: await activePolls(emu),
      cpu,
      events: collected.events,
      errors: collected.errors,
      redis: {
        usedBytes: await stat(r, 'memory', 'used_memory') - usedBefore,
        streamBytes: await memoryOf(r, streams),
        leaseBytes: await memoryOf(r, [...leases, ...fences]),
        streams: streams.length,
        idleOpsPerS,
        idleByCommand,
        busyOpsPerS,
        busyByCommand
      }
    }
  } finally {
    r.disconnect()
    await Promise.all([gen, ...bridges, emu].map(async (p) => { await p.stop() }))
  }
}

async function main (): Promise<void> {
  const redis = await startRedis()
  try {
    log(`${settings.clients} clients through one bridge`)
    const one = await alone()
    log(`${settings.clients} clients over ${settings.instances} bridges sharing a Redis`)
    const many = await clustered(redis.url)
    const n = settings.clients
    const rows: string[][] = []
    for (const q of ['p50', 'p99', 'max'] as const) {
      rows.push([`event latency ${q} (ms)`, fmt(many.latency[q]), fmt(one.latency[q]), `${fmt(ratio(many.latency[q], one.latency[q]))}x`])
    }
    rows.push(['upstream polls held', String(many.polls), String(one.polls), `${fmt(ratio(many.polls, one.polls))}x`])
    rows.push(['bridge CPU, sum of instances (% of a core)', fmt(many.cpu.reduce((a, b) => a + b, 0) * 100, 0), fmt((one.cpu[0] ?? 0) * 100, 0), ''])
    rows.push(['Redis memory per connection (bytes, used_memory growth)', fmt(many.redis.usedBytes / n, 0), '', ''])
    rows.push(['  of which its stream (MEMORY USAGE, mean)', fmt(many.redis.streamBytes / Math.max(1, many.redis.streams), 0), '', ''])
    rows.push(['  of which its lease and fence (MEMORY USAGE)', fmt(many.redis.leaseBytes / n, 0), '', ''])
    rows.push([`Redis commands per second per connection, idle (${settings.idleSeconds} s)`, fmt(many.redis.idleOpsPerS / n, 3), '', ''])
    for (const [name, perS] of Object.entries(many.redis.idleByCommand).sort((a, b) => b[1] - a[1])) {
      rows.push([`  ${name}`, fmt(perS / n, 3), '', ''])
    }
    rows.push([`Redis commands per second, ${settings.latencyRate} events/s`, fmt(many.redis.busyOpsPerS, 0), '', ''])
    for (const [name, perS] of Object.entries(many.redis.busyByCommand).sort((a, b) => b[1] - a[1])) {
      rows.push([`  ${name}`, fmt(perS, 0), '', ''])
    }
    process.stdout.write(`\n${table(['figure', `${settings.instances} bridges + Redis`, '1 bridge', 'ratio'], rows)}\n`)
    const out = { at: new Date().toISOString(), node: process.version, cpus: cpus().length, settings, alone: one, cluster: many }
    mkdirSync(`${root}bench/results`, { recursive: true })
    writeFileSync(`${root}bench/results/cluster-${out.at.replace(/[:.]/g, '-')}.json`, JSON.stringify(out, null, 2))
  } finally {
    redis.child.kill('SIGKILL')
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
