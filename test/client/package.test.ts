import t from 'tap'
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, sep } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import WebSocket from 'ws'
import type * as Sdk from '../../packages/client/src/index.js'

/*
 * What a user of npm gets: both packages packed as `npm publish` would pack
 * them (prepack and prepare build them), installed from their tarballs alone
 * in scratch projects outside the repository, the installed server started
 * and the installed client chatting with it. A file missing from `files`, a
 * dependency that the client package drags in, or a server that finds the
 * SDK only where the workspace put it, fails here and nowhere else.
 */

// Installing the tarballs takes a while on two busy cores.
t.setTimeout(600_000)

const root = fileURLToPath(new URL('../..', import.meta.url))
const clientDir = join(root, 'packages', 'client')
const work = await mkdtemp(join(tmpdir(), 'chatapi-bridge-package-'))
t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

/** The environment of a child, without what `npm test` passes down (npm_config_* would steer the inner npm). */
function cleanEnv (extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'INIT_CWD') env[k] = v
  }
  return { ...env, ...extra }
}

async function npm (args: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile('npm', args, { cwd, env: cleanEnv(), timeout: 300_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** A scratch project: a package.json and nothing else, as a user's would be before the install. */
async function scratch (name: string): Promise<string> {
  const dir = join(work, name)
  await mkdir(dir)
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `scratch-${name}`, private: true, type: 'module' }))
  return dir
}

const INSTALL = ['install', '--prefer-offline', '--no-audit', '--no-fund']

/** Ports free at the moment of asking, distinct from each other (all are held until every one is known). */
async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => await new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { resolve(s) })
  })))
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map(async (s) => { await new Promise((resolve) => s.close(resolve)) }))
  return ports
}

/** `promise`, or a rejection naming `what` after `ms`: a deadline, not a pause. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: nothing after ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

interface Packed { filename: string, files: Array<{ path: string }> }
const tarballs: { root?: string, client?: string } = {}

t.test('npm pack gives each package its build, and nothing of the other', async (t) => {
  const dest = join(work, 'tarballs')
  await mkdir(dest)
  const packs: Record<'root' | 'client', string[]> = { root: [], client: [] }
  for (const [which, cwd] of [['root', root], ['client', clientDir]] as const) {
    // The build is fresh (npm test builds first, the before script transpiles what changed since): packing
    // without the scripts spares two more builds; that publishing runs them is checked below.
    const r = await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], cwd)
    t.equal(r.code, 0, `npm pack of ${which}`, { output: r.stderr.slice(-3000) })
    if (r.code !== 0) return
    const [packed] = JSON.parse(r.stdout) as Packed[]
    if (packed === undefined) throw new Error(`npm pack of ${which} listed no tarball: ${r.stdout}`)
    tarballs[which] = join(dest, packed.filename)
    packs[which] = packed.files.map((f) => f.path)
  }

  const scripts = async (dir: string): Promise<Record<string, string>> => (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  t.match((await scripts(root)).prepack, /npm run build/, 'npm publish of the bridge builds it first (prepack)')
  t.match((await scripts(clientDir)).prepare, /npm run build/, 'and of the SDK (prepare)')
  for (const f of ['dist/server.js', 'dist/index.js', 'dist/client.js', 'dist/client.d.ts', 'dist/plugins/pages.js', 'src/demo/index.html']) {
    t.ok(packs.root.includes(f), `the bridge's tarball has ${f}`)
  }
  t.notOk(packs.root.some((f) => f.startsWith('packages/')), 'the bridge\'s tarball does not carry the SDK\'s package: it depends on it')

  for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/bridge-client.js']) {
    t.ok(packs.client.includes(f), `the SDK's tarball has ${f}`)
  }
  t.same(packs.client.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md'), [], 'and nothing but its build, package.json and README.md')
})

t.test('the SDK installs on its own with no dependency at all', async (t) => {
  if (tarballs.client === undefined) { t.fail('no tarball of the SDK to install'); return }
  const dir = await scratch('client-only')
  const r = await npm([...INSTALL, tarballs.client], dir)
  t.equal(r.code, 0, 'npm install of the SDK\'s tarball', { output: r.stderr.slice(-3000) })
  const top = (await readdir(join(dir, 'node_modules'))).filter((n) => !n.startsWith('.'))
  t.same(top, ['@chatapi-bridge'], 'node_modules holds one scope')
  t.same(await readdir(join(dir, 'node_modules', '@chatapi-bridge')), ['client'], 'and in it the SDK alone')
  const installed = JSON.parse(await readFile(join(dir, 'node_modules/@chatapi-bridge/client/package.json'), 'utf8')) as Record<string, unknown>
  t.equal(installed.dependencies, undefined, 'its package.json names no dependency')
})

t.test('the installed bridge serves the installed SDK, which chats with it', async (t) => {
  if (tarballs.root === undefined || tarballs.client === undefined) { t.fail('no tarballs to install'); return }
  const dir = await scratch('bridge')
  const r = await npm([...INSTALL, tarballs.root, tarballs.client], dir)
  t.equal(r.code, 0, 'npm install of both tarballs', { output: r.stderr.slice(-3000) })
  if (r.code !== 0) return
  t.notOk(existsSync(join(dir, 'node_modules/chatapi-bridge/node_modules/@chatapi-bridge')), 'the bridge uses the one SDK installed beside it')

  const [port, emulatorPort] = await freePorts(2) as [number, number]
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [join(dir, 'node_modules/chatapi-bridge/dist/server.js')], {
    cwd: dir,
    env: cleanEnv({ PORT: String(port), EMULATOR_PORT: String(emulatorPort), HOST: '127.0.0.1', LOG_LEVEL: 'info', DRAIN_MS: '300' })
  })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const lines: string[] = []
  const ready = await within(new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line)
      let rec: Record<string, unknown>
      try {
        rec = JSON.parse(line) as Record<string, unknown>
      } catch {
        return
      }
      if (typeof rec.msg === 'string' && rec.msg.startsWith('chatapi-bridge ready')) resolve(rec)
    })
    void exited.then((code) => { reject(new Error(`the server exited ${String(code)} before it was ready:\n${stderr}\n${lines.join('\n')}`)) })
  }), 30_000, 'the ready line')
  t.equal(ready.socket, `ws://127.0.0.1:${port}/v1/ws`, 'the ready line names the socket')
  t.equal(ready.demoPage, `http://127.0.0.1:${port}/`, 'and the demo page')
  t.type(ready.emulator, 'string', 'and the built-in emulator')

  // The client as the user's project resolves it: through the installed package's exports.
  const entry = createRequire(join(dir, 'package.json')).resolve('@chatapi-bridge/client')
  t.ok(entry.startsWith(join(dir, 'node_modules', '@chatapi-bridge', 'client', 'dist') + sep), `the installed SDK's entry (${entry})`)
  const sdk = await import(pathToFileURL(entry).href) as typeof Sdk
  const client = new sdk.BridgeClient({ url: ready.socket as string, WebSocket, storage: new sdk.MemoryStorage() })
  t.teardown(() => { client.close() })
  const welcome = await within(client.connect(), 15_000, 'the welcome')
  t.type(welcome.clientId, 'string', 'welcomed with a clientId')
  const answer = await within(client.send('hello'), 15_000, 'the answer to hello')
  t.type(answer.questionId, 'string', 'the answer names its question')
  t.ok(answer.data.replies.length > 0, 'the bot answered')

  // The old subpath of the bridge's package is the same SDK, not a copy.
  const legacy = await import(pathToFileURL(createRequire(join(dir, 'package.json')).resolve('chatapi-bridge/client')).href) as typeof Sdk
  t.equal(legacy.BridgeClient, sdk.BridgeClient, 'chatapi-bridge/client re-exports @chatapi-bridge/client')

  const res = await fetch(`http://127.0.0.1:${port}/sdk/index.js`)
  t.equal(res.status, 200, '/sdk/index.js is served')
  t.match(res.headers.get('content-type'), /javascript/, 'as JavaScript')
  t.equal(await res.text(), await readFile(entry, 'utf8'), 'and it is the installed SDK\'s build')

  client.close()
  child.kill('SIGTERM')
  t.equal(await within(exited, 15_000, 'the server exiting'), 0, 'the server exits 0 on SIGTERM')
})
