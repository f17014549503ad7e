import t from 'tap'
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, posix, relative, sep } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ConfigSchema, loadConfig } from '../../dist/config.js'
import { copyOf, envOf, execForm, ignoredBy, lastOf, parseDockerfile, parseStages, runCommand, type Stage } from '../fixtures/dockerfile.js'
import { TestClient } from '../fixtures/ws-client.js'

/*
 * No container engine runs here, so this test does what the image does: it
 * reads the Dockerfile, repeats its runtime stage in a temp dir (the same
 * copies, the same production install, the same ENV, the same CMD and
 * HEALTHCHECK), and checks that the result chats and drains. The suite has
 * already run `npm run build`, so dist/ stands for the build stage's output.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
const dockerfileText = readFileSync(join(root, 'Dockerfile'), 'utf8')
const dockerignoreText = readFileSync(join(root, '.dockerignore'), 'utf8')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines?: { node?: string }
  scripts?: Record<string, string>
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean, optional?: boolean, devOptional?: boolean, peer?: boolean }>
}

const stages = parseStages(parseDockerfile(dockerfileText))
const final = stages[stages.length - 1] as Stage
const imageEnv = new Map(final.ops.filter((i) => i.op === 'ENV').flatMap((i) => envOf(i.args)))
const ignored = ignoredBy(dockerignoreText)

/** The default of a numeric setting, from the server's own schema. */
function settingDefault (name: string): number {
  const d = (ConfigSchema.properties as Record<string, { default?: unknown }>)[name]?.default
  if (typeof d !== 'number') throw new Error(`the setting ${name} has no numeric default`)
  return d
}

// ------------------------------------------------------------------- helpers

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

/** The environment of a child, without what `npm test` passes down (npm_config_* would steer the inner npm). */
function cleanEnv (extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'INIT_CWD') env[k] = v
  }
  return { ...env, ...extra }
}

async function run (cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number, out: string }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv({}), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

/** Every file under `dir` with its size and mtime, to see whether a run wrote anything. */
async function snapshot (dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name)
    const s = await stat(p)
    out.set(relative(dir, p), e.isDirectory() ? 'dir' : `${s.size}:${s.mtimeMs}`)
  }
  return out
}

// --------------------------------------------------------------------- tests

t.test('the Dockerfile states what the image relies on', async (t) => {
  t.ok(stages.length >= 2, 'multi-stage: the compiler and dev dependencies stay in the build stage')
  const build = stages.find((s) => s.name === 'build')
  t.ok(build, 'a stage named "build"')
  const buildRuns = (build?.ops ?? []).filter((i) => i.op === 'RUN').map((i) => runCommand(i.args))
  t.ok(buildRuns.some((r) => /^npm ci\b/.test(r) && !r.includes('--omit')), 'the build stage installs every dependency with npm ci')
  t.ok(buildRuns.some((r) => r.includes('npm run build')), 'the build stage runs npm run build')

  const minMajor = Number(/\d+/.exec(pkg.engines?.node ?? '20')?.[0])
  for (const s of stages) {
    const m = /^node:(\d+)(?:[.\w-]*)-(slim|alpine[\d.]*|[a-z]+-slim)$/.exec(s.image)
    t.ok(m, `${s.image}: an official Node image, slim or alpine, with a pinned major`)
    const major = Number(m?.[1])
    t.ok(major >= minMajor, `${s.image}: Node ${major} satisfies engines ${pkg.engines?.node ?? ''}`)
  }

  const user = lastOf(final, 'USER')?.args
  t.ok(user, 'the runtime stage sets USER')
  t.match(user, /^[1-9]\d*(:\d+)?$/, 'a numeric non-root user, which Kubernetes runAsNonRoot can verify')

  const cmd = execForm(lastOf(final, 'CMD')?.args ?? '')
  t.ok(cmd, 'CMD is in exec form, so SIGTERM reaches node as PID 1 and no shell sits between')
  t.equal(cmd?.[0], 'node', 'CMD runs node itself')
  t.notMatch(cmd?.join(' ') ?? '', /\bnpm\b/, 'not npm start (npm does not forward signals, and prestart would rebuild)')
  t.equal(cmd?.join(' '), pkg.scripts?.start, 'CMD is what `npm start` runs after its build')
  t.notOk(lastOf(final, 'ENTRYPOINT'), 'no ENTRYPOINT wraps the command')
  t.equal(lastOf(final, 'STOPSIGNAL')?.args ?? 'SIGTERM', 'SIGTERM', 'the stop signal is SIGTERM')

  const hc = /^((?:--[\w-]+=\S+\s+)*)CMD\s+(\[[\s\S]*\])$/.exec(lastOf(final, 'HEALTHCHECK')?.args ?? '')
  t.ok(hc, 'HEALTHCHECK with an exec-form CMD')
  const probe = execForm(hc?.[2] ?? '[]') ?? []
  t.equal(probe[0], 'node', 'the health check uses node (slim images have no curl)')
  t.match(probe.join(' '), /\/healthz/, 'it asks /healthz, not /readyz, so a drain is not taken for a dead container')

  t.equal(imageEnv.get('HOST'), '0.0.0.0', 'HOST=0.0.0.0')
  t.equal(imageEnv.get('NODE_ENV'), 'production', 'NODE_ENV=production')
  t.equal(lastOf(final, 'EXPOSE')?.args, imageEnv.get('PORT'), 'EXPOSE is the PORT the server listens on')
  const settings = Object.keys(ConfigSchema.properties)
  for (const name of imageEnv.keys()) {
    if (name !== 'NODE_ENV') t.ok(settings.includes(name), `ENV ${name} is a setting the server reads`)
  }

  const runs = final.ops.filter((i) => i.op === 'RUN').map((i) => runCommand(i.args))
  t.ok(runs.length > 0 && runs.every((r) => /^npm ci\b/.test(r) && r.includes('--omit=dev')),
    'the runtime stage runs nothing but npm ci --omit=dev (no compiler, no dev dependencies)')
})

t.test('.dockerignore keeps the build context to the sources', async (t) => {
  for (const s of stages) {
    for (const i of s.ops.filter((o) => o.op === 'COPY')) {
      const c = copyOf(i.args)
      if (c.from !== undefined) continue
      for (const src of c.sources) {
        t.notOk(ignored(src), `COPY ${src} (line ${i.line}) is in the context`)
        t.ok(existsSync(join(root, src)), `${src} exists`)
      }
    }
  }
  for (const p of ['node_modules', 'node_modules/ws/package.json', 'dist/server.js', '.git', '.env', 'test/service/image.test.ts', '.tap']) {
    t.ok(ignored(p), `${p} stays out of the context`)
  }
})

t.test('the Kubernetes manifests agree with the image', async (t) => {
  const path = join(root, 'deploy/kubernetes/deployment.yaml')
  const y = readFileSync(path, 'utf8')
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(y)
    return m === null ? undefined : Number(m[1])
  }
  const envValue = (name: string): number | undefined => num(new RegExp(`name:\\s*${name}\\s*\\n\\s*value:\\s*"?(\\d+)"?`))

  t.match(y, /readinessProbe:\s*\n\s*httpGet:\s*\n\s*path:\s*\/readyz/, 'readiness asks /readyz')
  t.match(y, /livenessProbe:\s*\n\s*httpGet:\s*\n\s*path:\s*\/healthz/, 'liveness asks /healthz')
  t.equal(num(/containerPort:\s*(\d+)/), Number(imageEnv.get('PORT')), 'the container port is the image PORT')
  t.equal(num(/runAsUser:\s*(\d+)/), Number(lastOf(final, 'USER')?.args.split(':')[0]), 'runAsUser is the image USER')
  t.match(y, /runAsNonRoot:\s*true/, 'runAsNonRoot')
  t.match(y, /readOnlyRootFilesystem:\s*true/, 'read-only root filesystem')
  for (const secret of ['CHATAPI_TOKEN', 'TICKET_SECRET']) {
    t.match(y, new RegExp(`name:\\s*${secret}\\s*\\n\\s*valueFrom:\\s*\\n\\s*secretKeyRef:`), `${secret} comes from a Secret`)
  }

  // The manifest's settings are ones the server knows, and it would start with them.
  const env: Record<string, string> = {}
  for (const m of y.matchAll(/-\s*name:\s*([A-Z_][A-Z0-9_]*)\s*\n\s*(value:\s*(?:"([^"\n]*)"|(\S[^\n]*))|valueFrom:)/g)) {
    const name = m[1] as string
    env[name] = m[2] === 'valueFrom:' ? 'a-secret-from-the-cluster-0123456789' : (m[3] ?? m[4] ?? '').trim()
  }
  const settings = Object.keys(ConfigSchema.properties)
  for (const name of Object.keys(env)) {
    if (name !== 'NODE_OPTIONS') t.ok(settings.includes(name), `${name} is a setting the server reads`)
  }
  t.doesNotThrow(() => loadConfig(env), 'the server accepts the manifest\'s settings')
  if (env.METRICS_PORT !== undefined) {
    t.equal(num(/name:\s*metrics\s*\n\s*containerPort:\s*(\d+)/), Number(env.METRICS_PORT), 'the metrics container port is METRICS_PORT')
  }

  const grace = num(/terminationGracePeriodSeconds:\s*(\d+)/)
  const preStop = num(/command:\s*\[\s*"sleep",\s*"(\d+)"\s*\]/) ?? 0
  const drain = envValue('DRAIN_MS') ?? settingDefault('DRAIN_MS')
  const deadline = envValue('SHUTDOWN_TIMEOUT_MS') ?? settingDefault('SHUTDOWN_TIMEOUT_MS')
  t.ok(grace !== undefined && grace * 1000 > preStop * 1000 + deadline,
    `terminationGracePeriodSeconds (${String(grace)} s) outlasts the preStop pause (${preStop} s) plus the shutdown deadline (${deadline} ms)`)
  t.ok(deadline > drain, `SHUTDOWN_TIMEOUT_MS (${deadline}) leaves room after DRAIN_MS (${drain})`)
})

t.test('the runtime stage, repeated without a container engine, chats and drains', async (t) => {
  const started = performance.now()
  const dir = await mkdtemp(join(tmpdir(), 'chatapi-bridge-image-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

  // The image's WORKDIR is the temp dir; every COPY and RUN of the runtime stage, in order.
  let workdir: string | undefined
  const inImage = (dest: string): string => {
    if (workdir === undefined) throw new Error('COPY before WORKDIR')
    const abs = posix.resolve(workdir, dest)
    const rel = posix.relative(workdir, abs)
    if (rel.startsWith('..')) throw new Error(`COPY to ${dest} leaves WORKDIR ${workdir}; this test only maps WORKDIR`)
    return join(dir, ...rel.split('/').filter((p) => p !== ''))
  }
  let installed = false
  for (const i of final.ops) {
    if (i.op === 'WORKDIR') workdir = posix.resolve(workdir ?? '/', i.args)
    if (i.op === 'COPY') {
      const c = copyOf(i.args)
      const into = c.dest.endsWith('/') || c.sources.length > 1
      for (const src of c.sources) {
        let from: string
        if (c.from === undefined) {
          from = join(root, src)
        } else {
          // The build stage mirrors the repository at its WORKDIR after `npm run build`.
          const stage = stages.find((s) => s.name === c.from)
          const stageDir = stage === undefined ? undefined : lastOf(stage, 'WORKDIR')?.args
          if (stageDir === undefined) throw new Error(`COPY --from=${c.from}: no such stage with a WORKDIR`)
          const rel = posix.relative(stageDir, src)
          if (rel.startsWith('..')) throw new Error(`COPY --from=${c.from} ${src}: outside the stage's WORKDIR`)
          from = join(root, ...rel.split('/'))
        }
        t.ok(existsSync(from), `COPY source ${src} exists (line ${i.line})`)
        const isDir = (await stat(from)).isDirectory()
        const to = isDir || !into ? inImage(c.dest) : join(inImage(c.dest), posix.basename(src))
        await mkdir(isDir ? to : join(to, '..'), { recursive: true })
        await cp(from, to, {
          recursive: true,
          // Context copies honour .dockerignore; build-stage output is taken whole.
          filter: (p) => c.from !== undefined || p === from || !ignored(relative(root, p).split(sep).join('/'))
        })
      }
    }
    if (i.op === 'RUN') {
      // The one RUN the runtime stage may have (checked above); --prefer-offline reads the local cache first.
      const r = await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], dir, 180_000)
      t.equal(r.code, 0, 'npm ci --omit=dev in the copy', { output: r.out.slice(-3000) })
      installed = true
    }
  }
  t.ok(installed, 'production dependencies installed')
  t.comment(`image assembled in ${Math.round(performance.now() - started)} ms`)

  // Dev-only packages are absent, production ones present, by the lockfile's own account.
  for (const name of ['typescript', 'tap', 'eslint']) {
    t.notOk(existsSync(join(dir, 'node_modules', name)), `${name} is not in the image`)
  }
  const missing: string[] = []
  const extra: string[] = []
  for (const [p, meta] of Object.entries(lock.packages)) {
    if (p === '' || meta.optional === true || meta.peer === true) continue
    const there = existsSync(join(dir, p))
    if (meta.dev === true && there) extra.push(p)
    if (meta.dev !== true && meta.devOptional !== true && !there) missing.push(p)
  }
  t.same(extra, [], 'no development-only package from the lockfile is installed')
  t.same(missing, [], 'every production package from the lockfile is installed')

  // Start it as the image does: the image ENV, then CMD from WORKDIR. Ports 0 so nothing collides.
  const cmd = execForm(lastOf(final, 'CMD')?.args ?? '') ?? []
  const env = cleanEnv({ ...Object.fromEntries(imageEnv), PORT: '0', EMULATOR_PORT: '0' })
  const before = await snapshot(dir)
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, cmd.slice(1), { cwd: dir, env })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  const lines: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const lineWaiters = new Set<{ pred: (l: Record<string, unknown>) => boolean, resolve: (l: Record<string, unknown>) => void }>()
  createInterface({ input: child.stdout }).on('line', (line) => {
    let rec: Record<string, unknown>
    try {
      rec = JSON.parse(line) as Record<string, unknown>
    } catch {
      rec = { msg: line, notJson: true }
    }
    lines.push(rec)
    for (const w of [...lineWaiters]) if (w.pred(rec)) { lineWaiters.delete(w); w.resolve(rec) }
  })
  const logLine = async (pred: (l: Record<string, unknown>) => boolean, what: string, ms: number): Promise<Record<string, unknown>> => {
    const seen = lines.find(pred)
    if (seen !== undefined) return seen
    const died = exited.then((code) => { throw new Error(`server exited ${String(code)} before ${what}:\n${stderr}\n${JSON.stringify(lines)}`) })
    return await within(Promise.race([new Promise<Record<string, unknown>>((resolve) => { lineWaiters.add({ pred, resolve }) }), died]), ms, what)
  }

  const ready = await logLine((l) => typeof l.msg === 'string' && l.msg.startsWith('chatapi-bridge ready'), 'the ready line', 20_000)
  const port = ready.port as number
  t.type(port, 'number', 'the ready line names the port')
  t.ok(lines.every((l) => l.notJson !== true), 'every log line is JSON')
  const http = `http://127.0.0.1:${port}`

  t.equal((await fetch(`${http}/readyz`)).status, 200, '/readyz answers 200')
  t.equal((await fetch(`${http}/healthz`)).status, 200, '/healthz answers 200')

  // The HEALTHCHECK command itself, as the engine would run it inside the container.
  const probe = execForm(/CMD\s+(\[[\s\S]*\])$/.exec(lastOf(final, 'HEALTHCHECK')?.args ?? '')?.[1] ?? '[]') ?? []
  const runProbe = async (): Promise<number | null> => await new Promise((resolve) => {
    const p = spawn(process.execPath, probe.slice(1), { cwd: dir, env: { ...env, PORT: String(port) }, stdio: 'ignore' })
    p.once('exit', (code) => { resolve(code) })
  })
  t.equal(await within(runProbe(), 10_000, 'the health check'), 0, 'the HEALTHCHECK command passes against the running server')

  // The demo page (on by default with the built-in emulator), with every asset it links.
  const page = await fetch(`${http}/`)
  const demoDir = join(root, 'src/demo')
  const demoFiles = existsSync(demoDir) ? (await readdir(demoDir, { recursive: true })).length : 0
  if (page.status === 404 && demoFiles === 0) {
    t.comment('this build serves no demo page at /')
  } else {
    t.equal(page.status, 200, 'the demo page is served from the image')
    // Every file the page needs, following the HTML's links and the scripts' imports, comes from the image.
    const origin = new URL(`${http}/`)
    const queue: Array<{ url: URL, body: string }> = [{ url: origin, body: await page.text() }]
    const fetched = new Set([origin.href])
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const refs = [
        ...item.body.matchAll(/\s(?:src|href)="([^"]+)"/g),
        ...item.body.matchAll(/\b(?:import|export)\s*(?:[\w*{}\s,]+from\s*)?['"](\.{0,2}\/[^'"]+)['"]/g),
        ...item.body.matchAll(/\bimport\s*\(\s*['"](\.{0,2}\/[^'"]+)['"]\s*\)/g)
      ].map((m) => new URL(m[1] as string, item.url))
      for (const ref of refs) {
        if (ref.origin !== origin.origin || fetched.has(ref.href) || fetched.size > 100) continue
        fetched.add(ref.href)
        const res = await fetch(ref)
        t.equal(res.status, 200, `${ref.pathname} is served from the image`)
        if (res.ok && /javascript|html/.test(res.headers.get('content-type') ?? '')) queue.push({ url: ref, body: await res.text() })
        else await res.body?.cancel()
      }
    }
    t.ok(fetched.size > 1, `the page's ${fetched.size - 1} files were fetched`)
  }

  // A chat through it, as in the README.
  const peer = new TestClient(`ws://127.0.0.1:${port}/v1/ws`)
  t.teardown(() => { peer.ws.terminate() })
  await within(peer.open(), 10_000, 'the socket opening')
  t.equal(peer.ws.protocol, 'chatapi-bridge.v1', 'the subprotocol is selected')
  peer.send({ type: 'hello' })
  const welcome = await peer.next((f) => f.type === 'welcome', 10_000)
  t.type(welcome.clientId, 'string', 'welcome names the client')
  peer.send({ type: 'send', id: '1', query: 'hello' })
  const result = await peer.next((f) => f.type === 'result' && f.id === '1', 10_000)
  t.equal(result.ok, true, 'the bot answered through the image')

  // SIGTERM: readiness goes, the socket is told to reconnect, the process exits 0 before its deadline.
  const deadlineMs = Number(imageEnv.get('SHUTDOWN_TIMEOUT_MS') ?? settingDefault('SHUTDOWN_TIMEOUT_MS'))
  const stopAt = performance.now()
  child.kill('SIGTERM')
  const said = await logLine((l) => l.signal === 'SIGTERM', 'the log line of the signal', 5000).catch(() => undefined)
  if (said === undefined) {
    t.comment('no log line names the signal; readiness during the drain not checked')
  } else {
    const status = await fetch(`${http}/readyz`).then((r) => r.status, () => 'refused')
    t.ok(status === 503 || status === 'refused', `/readyz stops answering 200 once the drain starts (${status})`)
  }
  t.equal(await peer.closed(deadlineMs + 2000), 1012, 'the socket closes with 1012')
  t.equal(await within(exited, deadlineMs + 2000, 'the process exiting'), 0, 'the process exits 0')
  const stopMs = Math.round(performance.now() - stopAt)
  t.ok(stopMs < deadlineMs, `stopped in ${stopMs} ms, before SHUTDOWN_TIMEOUT_MS (${deadlineMs})`)
  t.equal(await runProbe(), 1, 'the HEALTHCHECK command fails once the server is gone')

  // Nothing was written into the app's files, so a read-only root filesystem holds.
  const after = await snapshot(dir)
  const changed = [...after].filter(([p, s]) => before.get(p) !== s).map(([p]) => p)
  t.same(changed, [], 'the server wrote nothing under WORKDIR')
  t.comment(`whole run in ${Math.round(performance.now() - started)} ms`)
})
