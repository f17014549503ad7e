/** Child processes of the harness: start, talk to over IPC, read their CPU and memory, stop. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

const TICKS_PER_S = 100

export interface Proc {
  name: string
  child: ChildProcess
  pid: number
  /** Sends a command over IPC and resolves with the answer. */
  call: <T = unknown>(command: object) => Promise<T>
  stop: () => Promise<void>
}

/**
 * Starts `node script` with the soft file limit raised to the hard one (a
 * bash `ulimit` before exec: the harness raises it for its children, the
 * bridge does not raise its own). stdout is dropped unless `log` is set;
 * stderr goes to the harness's.
 */
export function startNode (name: string, script: string, env: Record<string, string>, opts: { ipc?: boolean, nodeArgs?: string[] } = {}): Proc {
  const args = [...(opts.nodeArgs ?? []), script].map((a) => `'${a}'`).join(' ')
  const child = spawn('bash', ['-c', `ulimit -n "$(ulimit -Hn)" && exec node ${args}`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', ...(opts.ipc === true ? ['ipc' as const] : [])]
  })
  let next = 0
  const waiting = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  child.on('message', (msg: { id?: number, result?: unknown, error?: string }) => {
    if (msg.id === undefined) return
    const w = waiting.get(msg.id)
    waiting.delete(msg.id)
    if (msg.error !== undefined) w?.reject(new Error(`${name}: ${msg.error}`))
    else w?.resolve(msg.result)
  })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  child.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`${name} exited (${String(code ?? signal)})`))
    waiting.clear()
  })
  return {
    name,
    child,
    pid: child.pid as number,
    call: async <T>(command: object): Promise<T> => await new Promise<T>((resolve, reject) => {
      const id = ++next
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      child.send({ id, command })
    }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** Resolves with the first message of an IPC child that carries `ready`. */
export async function ready<T = { ready: true }> (p: Proc, timeoutMs = 20_000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${p.name} did not get ready`)) }, timeoutMs)
    p.child.on('message', (msg: { ready?: boolean }) => {
      if (msg.ready === true) { clearTimeout(timer); resolve(msg as T) }
    })
    p.child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${p.name} exited with ${String(code)} before it was ready`)) })
  })
}

/** Polls `url` until it answers 2xx. */
export async function waitHttp (url: string, timeoutMs = 20_000): Promise<void> {
  const started = Date.now()
  while (Date.now() - started < timeoutMs) {
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      if (res.ok) return
    } catch {
      // Not listening yet.
    }
    await sleep(50)
  }
  throw new Error(`${url} did not answer`)
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

export interface Usage { rssBytes: number, cpuSeconds: number }

/** Resident memory and CPU time used so far, from /proc. */
export function usage (pid: number): Usage {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rss = /VmRSS:\s+(\d+) kB/.exec(status)
  // Fields after the command name, which is in parentheses and may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return { rssBytes: Number(rss?.[1] ?? 0) * 1024, cpuSeconds: ticks / TICKS_PER_S }
}

/** CPU time used by `pid` while `fn` runs, as a share of one core, with the wall time. */
export async function cpuDuring<T> (pids: number[], fn: () => Promise<T>): Promise<{ result: T, cpu: number[], seconds: number }> {
  const before = pids.map((p) => usage(p).cpuSeconds)
  const started = performance.now()
  const result = await fn()
  const seconds = (performance.now() - started) / 1000
  const cpu = pids.map((p, i) => (usage(p).cpuSeconds - (before[i] as number)) / seconds)
  return { result, cpu, seconds }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves when `check` holds, checking every `everyMs`. */
export async function until (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** The project's root (the harness runs from bench/results/build/) and the harness's own folder. */
export const root = fileURLToPath(new URL('../../../', import.meta.url))
const here = fileURLToPath(new URL('./', import.meta.url))
/** The channel token every scenario uses. */
export const TOKEN = 'bench-token'

/** The emulator, with h2c and HTTP/1.1 on one port, holding polls for `holdMs`. */
export async function startEmulator (holdMs: number): Promise<Proc & { origin: string }> {
  const port = await freePort()
  const p = startNode('emulator', `${root}dist/emulator/main.js`, {
    EMULATOR_PORT: String(port),
    EMULATOR_HOST: '127.0.0.1',
    EMULATOR_TOKENS: TOKEN,
    EMULATOR_HOLD_MS: String(holdMs),
    EMULATOR_HTTP2: 'true',
    EMULATOR_LOG_LEVEL: 'warn'
  })
  const origin = `http://127.0.0.1:${port}`
  await waitHttp(`${origin}/operator/stats`)
  return Object.assign(p, { origin })
}

/**
 * A bridge polling `emu` over h2c, with the rate limits and the poll-start
 * pace raised so that they do not throttle the load; `env` adds or overrides
 * settings, `nodeArgs` are given to node, `fixedPort` is the port to listen
 * on (a free one by default; a restart on the same port gives it again).
 * Resolves once /readyz answers.
 */
export async function startBridge (name: string, emu: { origin: string }, env: Record<string, string> = {}, nodeArgs: string[] = [], fixedPort?: number): Promise<Proc & { ws: string }> {
  const port = fixedPort ?? await freePort()
  const p = startNode(name, `${root}dist/server.js`, {
    PORT: String(port),
    HOST: '127.0.0.1',
    UPSTREAM_URL: `${emu.origin}/chatapi`,
    CHATAPI_TOKEN: TOKEN,
    TICKET_SECRET: 'bench-ticket-secret-0123456789',
    LOG_LEVEL: 'warn',
    UPSTREAM_HTTP2: 'h2c',
    UPSTREAM_POLL_CONNECTIONS: '4000',
    POLL_STARTS_PER_S: '100000',
    RATE_LIMIT_PER_S: '100000',
    RATE_LIMIT_BURST: '100000',
    ...env
  }, { nodeArgs })
  await waitHttp(`http://127.0.0.1:${port}/readyz`)
  return Object.assign(p, { ws: `ws://127.0.0.1:${port}/v1/ws` })
}

/** The load generator, driven over IPC. */
export async function startLoadgen (): Promise<Proc> {
  const p = startNode('loadgen', `${here}loadgen.js`, {}, { ipc: true })
  await ready(p)
  return p
}

/** One node of a V8 CPU profile, as the inspector's `Profiler.stop` gives it. */
interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
export interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

/** A function's own time in a profile: its share of the samples that were not idle, and of one core. */
export interface SelfTime { fn: string, share: number, ofCore: number }

/** A DevTools protocol session with a process started with `--inspect=127.0.0.1:<port>`. */
export interface Inspector {
  send: <T = unknown>(method: string, params?: object) => Promise<T>
  close: () => void
}

export async function inspect (inspectPort: number): Promise<Inspector> {
  const list = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json() as Array<{ webSocketDebuggerUrl: string }>
  const ws = new WebSocket(list[0]?.webSocketDebuggerUrl as string, { maxPayload: 0 })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let next = 0
  const send = async <T>(method: string, params: object = {}): Promise<T> => await new Promise<T>((resolve, reject) => {
    const id = ++next
    const onMessage = (data: Buffer): void => {
      const msg = JSON.parse(String(data)) as { id?: number, result?: T, error?: { message: string } }
      if (msg.id !== id) return
      ws.off('message', onMessage)
      if (msg.error !== undefined) reject(new Error(`${method}: ${msg.error.message}`))
      else resolve(msg.result as T)
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ id, method, params }))
  })
  return { send, close: () => { ws.close() } }
}

/**
 * A V8 CPU profile of the process listening for the inspector on
 * `inspectPort` (started with `--inspect=127.0.0.1:<port>`) while `fn`
 * runs: the profiler runs in that window only, not over the start-up and
 * the connects before it.
 */
export async function profileDuring (inspectPort: number, fn: () => Promise<void>): Promise<CpuProfile> {
  const { send, close } = await inspect(inspectPort)
  try {
    await send('Profiler.enable')
    await send('Profiler.setSamplingInterval', { interval: 1000 })
    await send('Profiler.start')
    await fn()
    return (await send<{ profile: CpuProfile }>('Profiler.stop')).profile
  } finally {
    close()
  }
}

/** The `top` functions by their own time (samples where they were on top of the stack), grouped by name and place. */
export function topSelfTime (profile: CpuProfile, top: number): SelfTime[] {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]))
  const micros = new Map<string, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const f = byNode.get(id)?.callFrame
    if (f === undefined || f.functionName === '(idle)') return
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0
    const place = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`
    const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}${place}`
    micros.set(key, (micros.get(key) ?? 0) + dt)
    busy += dt
  })
  const wall = profile.endTime - profile.startTime
  return [...micros.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([fn, us]) => ({ fn, share: us / busy, ofCore: us / wall }))
}
