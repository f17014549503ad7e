/**
 * Where the memory of an idle client goes: the bridge's JavaScript heap,
 * taken apart by what holds it. Starts the emulator and a bridge, takes a
 * heap snapshot of the bridge (after a full collection, which a snapshot
 * does), connects N idle clients, each with its own upstream poll, takes a
 * second one, and prints the growth per client grouped by constructor.
 *
 *   npm run bench:heap                  2,000 clients
 *   npm run bench:heap -- --clients=5000
 *
 * The snapshots go to bench/results/ (hundreds of MB; not committed).
 *
 * With `--alloc` it measures what a delivered event allocates instead: 1,000
 * clients (`--clients`), each with its own poll, get 200 events a second
 * (`--rate`) for 5 s (`--seconds`) twice, under V8's sampling heap profiler
 * (through the inspector): once counting every allocation, once only what
 * outlived a young-generation collection (what a scavenge copies, and so
 * what makes its pause long). Both are printed per delivered event, by the
 * code that allocated (ours, Node's HTTP/2, its streams, the rest) and by
 * the function of ours that asked for it. The profiles go to
 * bench/results/heap/alloc-*.heapprofile (DevTools opens them).
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { freePort, inspect, root, sleep, startBridge, startEmulator, startLoadgen, TOKEN, until } from './procs.js'

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]))
const clients = Number(args.get('clients') ?? 2000)
const dir = `${root}bench/results/heap/`

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

/** Bytes and counts per kind of heap object: its constructor, or its V8 type for strings, code and the like. */
function tally (file: string): { total: number, kinds: Map<string, { bytes: number, count: number }> } {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = s.snapshot.meta.node_fields
  const types = s.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const kinds = new Map<string, { bytes: number, count: number }>()
  let total = 0
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt] as number] as string
    const name = s.strings[s.nodes[i + nameAt] as number] as string
    const size = s.nodes[i + sizeAt] as number
    const kind = type === 'object' || type === 'native'
      ? name
      : type.endsWith('string') ? '(strings)' : type === 'closure' ? '(closures)' : `(${type})`
    const k = kinds.get(kind) ?? { bytes: 0, count: 0 }
    k.bytes += size
    k.count++
    kinds.set(kind, k)
    total += size
  }
  return { total, kinds }
}

/** Asks the bridge for a snapshot (SIGUSR2) and waits for its file. */
async function snapshot (pid: number): Promise<string> {
  const before = new Set(readdirSync(dir))
  process.kill(pid, 'SIGUSR2')
  let file: string | undefined
  await until(() => {
    file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    return file !== undefined
  }, 120_000, 'a heap snapshot', 200)
  // The file is complete once it ends its JSON and stops growing.
  const path = dir + (file as string)
  let size = -1
  for (;;) {
    await sleep(500)
    const now = statSync(path).size
    if (now === size && now > 0 && lastByte(path, now) === '}') return path
    size = now
  }
}

function lastByte (path: string, size: number): string {
  const fd = openSync(path, 'r')
  try {
    const b = Buffer.alloc(1)
    readSync(fd, b, 0, 1, size - 1)
    return b.toString()
  } finally {
    closeSync(fd)
  }
}

/** A sampling heap profile, as the inspector's `HeapProfiler.stopSampling` gives it. */
interface AllocNode { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: AllocNode[] }

/** Where an allocation was made: the module of the allocating function, by kind. */
function madeBy (url: string): string {
  if (url.includes('/dist/')) return 'ours (dist/)'
  if (url.startsWith('node:internal/http2')) return "Node's HTTP/2"
  if (url.startsWith('node:internal/streams')) return "Node's streams"
  if (url.startsWith('node:')) return 'the rest of Node'
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  return 'V8 and native'
}

/** A frame of ours, as `function file:line`. */
function ours (f: AllocNode['callFrame']): string {
  return `${f.functionName === '' ? '(anonymous)' : f.functionName} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`
}

/** Bytes per event by who made them, and by the innermost function of ours on the stack. */
function allocations (head: AllocNode, events: number): { total: number, by: Array<[string, number]>, asker: Array<[string, number]> } {
  const by = new Map<string, number>()
  const asker = new Map<string, number>()
  let total = 0
  const walk = (n: AllocNode, caller: string): void => {
    const mine = n.callFrame.url.includes('/dist/') ? ours(n.callFrame) : caller
    if (n.selfSize > 0) {
      total += n.selfSize
      const who = madeBy(n.callFrame.url)
      by.set(who, (by.get(who) ?? 0) + n.selfSize)
      asker.set(mine, (asker.get(mine) ?? 0) + n.selfSize)
    }
    for (const c of n.children) walk(c, mine)
  }
  walk(head, '(no function of ours)')
  const per = (m: Map<string, number>): Array<[string, number]> => [...m].map(([k, v]): [string, number] => [k, v / events]).sort((a, b) => b[1] - a[1])
  return { total: total / events, by: per(by), asker: per(asker) }
}

async function allocMain (): Promise<void> {
  mkdirSync(dir, { recursive: true })
  const n = Number(args.get('clients') ?? 1000)
  const rate = Number(args.get('rate') ?? 200)
  const seconds = Number(args.get('seconds') ?? 5)
  const emu = await startEmulator(600_000)
  const inspectPort = await freePort()
  const bridge = await startBridge('bridge', emu, {}, [`--inspect=127.0.0.1:${inspectPort}`])
  const gen = await startLoadgen()
  const devtools = await inspect(inspectPort)
  const publish = async (s: number): Promise<void> => {
    await gen.call({ cmd: 'publish', origin: emu.origin, token: TOKEN, rate, seconds: s, concurrency: 64, kind: 'ws' })
  }
  try {
    await gen.call({ cmd: 'connect', url: bridge.ws, clients: n, tabs: 1, shareCid: false })
    await until(async () => ((await (await fetch(`${emu.origin}/operator/stats`)).json()) as { activePolls: number }).activePolls >= n, 120_000, 'held polls', 200)
    // Warm: compiled, sessions open.
    await publish(2)
    await sleep(500)
    console.log(`\nallocated per delivered event, ${n} clients, ${rate} events a second for ${seconds} s each\n`)
    for (const [what, minor] of [['every allocation', true], ['what outlived a scavenge', false]] as const) {
      await gen.call({ cmd: 'measure' })
      await devtools.send('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: minor })
      await publish(seconds)
      await sleep(300)
      const { profile } = await devtools.send<{ profile: { head: AllocNode } }>('HeapProfiler.stopSampling')
      const { ws } = await gen.call<{ ws: { events: number } }>({ cmd: 'collect' })
      writeFileSync(`${dir}alloc-${minor ? 'all' : 'kept'}.heapprofile`, JSON.stringify(profile))
      const a = allocations(profile.head, ws.events)
      console.log(`${what}: ${a.total.toFixed(0)} bytes per event (${ws.events} events)`)
      for (const [who, b] of a.by.slice(0, 6)) console.log(`${b.toFixed(0).padStart(7)}  made by ${who}`)
      console.log('  of which asked for by')
      for (const [fn, b] of a.asker.slice(0, 10)) console.log(`${b.toFixed(0).padStart(7)}  ${fn}`)
      console.log('')
    }
  } finally {
    devtools.close()
    await Promise.all([gen.stop(), bridge.stop(), emu.stop()])
  }
}

async function main (): Promise<void> {
  if (args.has('alloc')) {
    await allocMain()
    return
  }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const emu = await startEmulator(600_000)
  const bridge = await startBridge('bridge', emu, {}, ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`])
  const gen = await startLoadgen()
  try {
    await sleep(1500)
    const base = tally(await snapshot(bridge.pid))
    await gen.call({ cmd: 'connect', url: bridge.ws, clients, tabs: 1, shareCid: false })
    await until(async () => ((await (await fetch(`${emu.origin}/operator/stats`)).json()) as { activePolls: number }).activePolls >= clients, 120_000, 'held polls', 200)
    await sleep(3000)
    const loaded = tally(await snapshot(bridge.pid))
    const rows = [...loaded.kinds].map(([kind, k]) => {
      const b = base.kinds.get(kind) ?? { bytes: 0, count: 0 }
      return { kind, bytes: (k.bytes - b.bytes) / clients, count: (k.count - b.count) / clients }
    }).sort((x, y) => y.bytes - x.bytes)
    console.log(`\nheap growth per idle client, ${clients} clients: ${((loaded.total - base.total) / clients).toFixed(0)} bytes\n`)
    console.log(`${'bytes'.padStart(7)}  ${'count'.padStart(6)}  kind`)
    for (const r of rows.slice(0, 30)) console.log(`${r.bytes.toFixed(0).padStart(7)}  ${r.count.toFixed(2).padStart(6)}  ${r.kind}`)
  } finally {
    await Promise.all([gen.stop(), bridge.stop(), emu.stop()])
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
