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
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from 'node:fs'
import { root, sleep, startBridge, startEmulator, startLoadgen, until } from './procs.js'

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

async function main (): Promise<void> {
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
