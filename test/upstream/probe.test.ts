import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { startEmulator, type Emulator, type ProfileName } from '../../dist/emulator/index.js'
import { adviceFor } from '../../dist/probe/advice.js'
import { MAX_REQUESTS } from '../../dist/probe/limits.js'
import { probeChatApi } from '../../dist/probe/probe.js'
import { matchProfiles } from '../../dist/probe/profile-match.js'
import { formatReport } from '../../dist/probe/report.js'
import { probeOptionsFrom } from '../../dist/probe/settings.js'
import type { ProbeReport } from '../../dist/probe/types.js'

// A token that cannot turn up by chance in a report, with the colon real tokens have.
const TOKEN = 'Pr0beSecret:718e36f7005fbba3e2a9696784b83dc3'
const HOLD_MS = 1200
const HOLD_LIMIT_MS = 2000
const mainJs = fileURLToPath(new URL('../../dist/probe/main.js', import.meta.url))

async function emulator (t: Test, profiles: ProfileName[], clockOffsetMs = 0): Promise<Emulator> {
  const em = await startEmulator({ tokens: [TOKEN], holdMs: HOLD_MS, profiles, clockOffsetMs })
  t.teardown(() => em.close())
  return em
}

type Expected = Record<string, unknown>

/** What the probe reports of the emulator with no profile; each case below changes some of it. */
const DEFAULT: Expected = {
  badToken: { status: 401, configNotFound: 'no', body: 'json' },
  token: { accepted: 'yes', status: 200 },
  hold: { held: 'yes', atLeast: false, expiry: 'empty-200', expiryStatus: 200 },
  timestamps: { precision: 'ms', keepsMs: 'yes', zone: 'none', eventTimes: 'iso', untimedTypes: [] },
  tsBound: 'inclusive',
  cidScope: 'scoped',
  cursor: 'per-cid',
  history: { shape: 'pairs', status: 200, items: 2, limit: 'yes', fromTo: 'yes', fromTimestamp: 'no' },
  state: { get: 'works', set: 'works', kept: 'yes' },
  messageStatus: { access: 'works', seen: ['SENT'] },
  lateStamps: { seen: 'no' },
  unmatched: [],
  errors: []
}

const CASES: Array<{ profiles: ProfileName[], expect: Expected }> = [
  { profiles: [], expect: {} },
  { profiles: ['no-hold'], expect: { hold: { held: 'no' } } },
  { profiles: ['timeout-408'], expect: { hold: { expiry: '408', expiryStatus: 408 } } },
  { profiles: ['exclusive-ts'], expect: { tsBound: 'exclusive' } },
  { profiles: ['whole-seconds'], expect: { timestamps: { precision: 'seconds', keepsMs: 'no' } } },
  { profiles: ['second-stamps'], expect: { timestamps: { precision: 'seconds', keepsMs: 'yes' }, tsBound: 'undecidable' } },
  { profiles: ['zoned'], expect: { timestamps: { zone: '+03:00' } } },
  { profiles: ['late-stamps'], expect: { lateStamps: { seen: 'yes' } } },
  { profiles: ['unscoped-cid'], expect: { cidScope: 'unscoped', cursor: 'per-client' } },
  { profiles: ['not-found-token'], expect: { badToken: { status: 404, configNotFound: 'yes', body: 'text' } } },
  { profiles: ['entry-history'], expect: { history: { shape: 'entries', items: 4, limit: 'yes', fromTo: 'no', fromTimestamp: 'yes' } } },
  { profiles: ['epoch-times'], expect: { timestamps: { eventTimes: 'epoch' } } },
  { profiles: ['outer-times'], expect: { timestamps: { eventTimes: 'outer' } } },
  { profiles: ['untimed-state'], expect: { timestamps: { untimedTypes: ['stateUpdate'] } } },
  { profiles: ['no-hold', 'exclusive-ts'], expect: { hold: { held: 'no' }, tsBound: 'exclusive' } }
]

/** `base` with `change` laid over it, one level of objects deep. */
function overlay (base: Expected, change: Expected): Expected {
  const out: Expected = { ...base }
  for (const [k, v] of Object.entries(change)) {
    const b = base[k]
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof b === 'object' ? { ...b, ...v } : v
  }
  return out
}

/** The report's values at the keys `shape` has, so that t.same compares exactly those. */
function pick (value: unknown, shape: unknown): unknown {
  if (typeof shape !== 'object' || shape === null || Array.isArray(shape)) return value
  const source = (value ?? {}) as Record<string, unknown>
  return Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, pick(source[k], v)]))
}

function assertNoToken (t: Test, report: ProbeReport): void {
  t.notOk(formatReport(report).includes(TOKEN), 'the token is not in the text report')
  t.notOk(JSON.stringify(report).includes(TOKEN), 'nor anywhere in the report object')
  t.notOk(formatReport(report).includes(encodeURIComponent(TOKEN)), 'nor percent-encoded')
}

t.test('the probe names each emulator profile', async t => {
  // In parallel: each probe waits out a hold or two of its own emulator.
  const reports = await Promise.all(CASES.map(async c => {
    const em = await emulator(t, c.profiles)
    const report = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS })
    return { report, requests: em.requests.length }
  }))
  for (const [i, c] of CASES.entries()) {
    const { report, requests } = reports[i] as { report: ProbeReport, requests: number }
    t.test(c.profiles.join(',') || 'default', async t => {
      const expected = overlay(DEFAULT, c.expect)
      t.same(pick(report, expected), expected, 'every finding')
      t.same(report.profiles, c.profiles, 'the profiles named')
      t.equal(report.requests, requests, 'the report counts every request the emulator saw')
      t.ok(report.requests <= MAX_REQUESTS, `a bounded number of requests (${report.requests})`)
      if (report.hold.held === 'yes') t.ok(Number(report.hold.heldMs) >= HOLD_MS - 50 && Number(report.hold.heldMs) < HOLD_LIMIT_MS, 'the hold is measured')
      assertNoToken(t, report)
      t.match(formatReport(report), c.profiles.length === 0 ? /Emulator profiles: none/ : `Emulator profiles: ${c.profiles.join(', ')}`)
    })
  }
})

t.test('the not-found answer names the bad token: the report masks it', async t => {
  const em = await emulator(t, ['not-found-token'])
  const report = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS, clientId: 'probe-masked' })
  t.match(report.badToken.excerpt, /^ChannelChat config not found for token \[redacted\]x-probe-invalid and channel CHATAPI$/)
  t.equal(report.clientId, 'probe-masked', 'the clientId given is used')
  assertNoToken(t, report)
})

t.test('the clock: an upstream hours ahead, with its Date header agreeing', async t => {
  const em = await emulator(t, ['no-hold'], 3 * 3_600_000)
  const report = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS })
  const { stampVsLocalMs, stampVsDateMs, dateVsLocalMs } = report.timestamps.clock
  t.ok(Math.abs(Number(stampVsLocalMs) - 3 * 3_600_000) < 1000, `stamps 3 h ahead of us (${String(stampVsLocalMs)})`)
  t.ok(Number(stampVsDateMs) >= 0 && Number(stampVsDateMs) < 1000, 'stamps within the Date header\'s second')
  t.ok(Math.abs(Number(dateVsLocalMs) - 3 * 3_600_000) < 2000, 'the Date header 3 h ahead too')
  // The Date header drops the fraction of its second: about 10800 s, give or take one.
  t.match(report.notes.join('\n'), /clock is about 10(799|800) s from ours/)
})

t.test('a hold longer than the limit is reported as "at least", with a POLL_TIMEOUT_MS above it', async t => {
  const em = await emulator(t, [])
  const report = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: 500 })
  t.match(report.hold, { held: 'yes', atLeast: true, expiry: 'unknown' })
  t.ok(Number(report.hold.heldMs) >= 500 && Number(report.hold.heldMs) < HOLD_MS, 'the probe stopped waiting at its limit')
  t.equal(report.settings.POLL_TIMEOUT_MS, '40000')
  t.match(report.notes.join('\n'), /longer than the probe waited/)
  t.match(formatReport(report), /hold\s+held at least 0\.5 s/)
})

t.test('sends that fail leave what depends on them unknown, and say why', async t => {
  const em = await emulator(t, ['no-hold'])
  em.faults.add({ route: 'send', kind: 'reset', count: Infinity })
  const report = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS })
  t.same([report.timestamps.precision, report.tsBound, report.cidScope, report.cursor, report.lateStamps.seen], ['unknown', 'unknown', 'unknown', 'unknown', 'unknown'])
  t.equal(report.hold.held, 'no', 'what needs no message is still found')
  t.equal(report.history.shape, 'empty')
  t.match(report.errors.join('\n'), /send: /)
  t.match(formatReport(report), /Steps that failed:/)
})

t.test('a wrong token: refused, and nothing past the token is probed', async t => {
  const em = await emulator(t, [])
  const report = await probeChatApi({ url: em.url, token: 'not-' + TOKEN, holdLimitMs: HOLD_LIMIT_MS })
  t.same(report.token, { accepted: 'no', status: 401 })
  t.equal(report.requests, 2)
  t.equal(report.hold.held, 'unknown')
  t.match(report.notes.join('\n'), /token was refused/)
})

t.test('an upstream that answers every call with an HTML 502 gets a report of unknowns', async t => {
  const server = await listen(t, createServer((_req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>Bad Gateway</body></html>')
  }))
  const report = await probeChatApi({ url: `${originOf(server)}/chatapi`, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS })
  t.same(report.badToken, { status: 502, configNotFound: 'no', body: 'html', excerpt: '<html><body>Bad Gateway</body></html>' })
  t.same(report.token, { accepted: 'unknown', status: 502 })
  t.same([report.hold.held, report.tsBound, report.cidScope, report.cursor, report.history.shape], ['unknown', 'unknown', 'unknown', 'unknown', 'unknown'])
  t.same(report.profiles, [], 'no profile is claimed from errors')
  t.ok(report.errors.length > 0, 'the failed steps are listed')
  t.ok(report.requests <= MAX_REQUESTS)
  assertNoToken(t, report)
})

t.test('findings that no profile plays are listed apart, and the notes read them', async t => {
  const em = await emulator(t, ['no-hold'])
  const base = await probeChatApi({ url: em.url, token: TOKEN, holdLimitMs: HOLD_LIMIT_MS })
  const odd: ProbeReport = {
    ...base,
    badToken: { ...base.badToken, status: 403 },
    timestamps: { ...base.timestamps, zone: 'Z', untimedTypes: ['agentResponse'], clock: { stampVsLocalMs: 3 * 3_600_000 + 20, stampVsDateMs: 3 * 3_600_000 + 400, dateVsLocalMs: -380 } },
    history: { ...base.history, shape: 'events' },
    state: { get: 'not-found', set: 'not-found', kept: 'unknown' }
  }
  const { profiles, unmatched } = matchProfiles(odd)
  t.same(profiles, ['no-hold'])
  t.same(unmatched, [
    'times written with zone Z',
    'a wrong token gets 403',
    'history of shape "events"',
    'agentResponse events carry no time',
    'no state route at /client/{clientId}/state'
  ])
  t.match(adviceFor(odd, profiles).notes.join('\n'), /3\.00 h from UTC: the server probably writes local time without its zone/)
  t.match(formatReport({ ...odd, profiles, unmatched }), /Played by no profile: times written with zone Z; a wrong token gets 403/)
})

t.test('probeOptionsFrom reads the bridge\'s own variables', async t => {
  t.same(probeOptionsFrom({ UPSTREAM_URL: ' https://bot.jaicp.com/chatapi ', CHATAPI_TOKEN: ` ${TOKEN}\n` }),
    { url: 'https://bot.jaicp.com/chatapi', token: TOKEN, holdLimitMs: 30_000 }, 'trimmed, with the default hold limit')
  t.same(probeOptionsFrom({ UPSTREAM_URL: 'http://h/chatapi', CHATAPI_TOKEN: 'x', PROBE_HOLD_LIMIT_MS: '5000', PROBE_CLIENT_ID: 'me' }),
    { url: 'http://h/chatapi', token: 'x', holdLimitMs: 5000, clientId: 'me' })
  t.throws(() => probeOptionsFrom({ CHATAPI_TOKEN: 'x' }), { code: 'PROBE_SETTINGS', message: /UPSTREAM_URL must be set/ })
  t.throws(() => probeOptionsFrom({ UPSTREAM_URL: 'ftp://h', CHATAPI_TOKEN: TOKEN }), { message: /http:\/\/ or https:\/\// })
  t.throws(() => probeOptionsFrom({ UPSTREAM_URL: 'http://h', CHATAPI_TOKEN: 'x', PROBE_HOLD_LIMIT_MS: 'soon' }), { message: /PROBE_HOLD_LIMIT_MS/ })
  try {
    probeOptionsFrom({ UPSTREAM_URL: 'ftp://h', CHATAPI_TOKEN: TOKEN })
  } catch (err) {
    t.notOk(String(err).includes(TOKEN), 'an error never quotes the token')
  }
})

t.test('the built CLI', async t => {
  if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: run npm run build first`)

  t.test('prints the report and exits 0', async t => {
    const em = await emulator(t, ['no-hold'])
    const run = await cli(t, { UPSTREAM_URL: em.url, CHATAPI_TOKEN: TOKEN, PROBE_HOLD_LIMIT_MS: String(HOLD_LIMIT_MS) })
    t.equal(run.code, 0, 'exits 0', { stderr: run.stderr })
    t.match(run.stdout, /^Chat API probe of http:\/\/127\.0\.0\.1:\d+\/chatapi: client probe-[0-9a-f]+/)
    t.match(run.stdout, /hold\s+not held/)
    t.match(run.stdout, 'Emulator profiles: no-hold')
    t.match(run.stdout, /Settings: UPSTREAM_URL=\S+ CHATAPI_TOKEN=<the channel token>/)
    t.match(run.stderr, /probing/, 'progress goes to stderr')
    t.notOk((run.stdout + run.stderr).includes(TOKEN), 'the token is printed nowhere')
  })

  t.test('with --json prints the report as JSON', async t => {
    const em = await emulator(t, ['no-hold', 'zoned'])
    const run = await cli(t, { UPSTREAM_URL: em.url, CHATAPI_TOKEN: TOKEN, PROBE_HOLD_LIMIT_MS: String(HOLD_LIMIT_MS) }, ['--json'])
    t.equal(run.code, 0, 'exits 0', { stderr: run.stderr })
    t.same((JSON.parse(run.stdout) as ProbeReport).profiles, ['no-hold', 'zoned'])
  })

  t.test('exits 2 when the settings are missing', async t => {
    const run = await cli(t, {})
    t.equal(run.code, 2)
    t.match(run.stderr, /UPSTREAM_URL and CHATAPI_TOKEN must be set/)
    t.match(run.stderr, /usage:/)
    t.equal(run.stdout, '')
  })

  t.test('exits 1 when the upstream cannot be reached, the token masked', async t => {
    const server = await listen(t, createServer())
    const url = `${originOf(server)}/chatapi`
    await new Promise(resolve => server.close(resolve))
    const run = await cli(t, { UPSTREAM_URL: url, CHATAPI_TOKEN: TOKEN })
    t.equal(run.code, 1)
    t.match(run.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+\/chatapi: .*ECONNREFUSED/)
    t.notOk(run.stderr.includes(TOKEN))
  })
})

interface CliRun { code: number | null, stdout: string, stderr: string }

async function cli (t: Test, env: Record<string, string>, args: string[] = []): Promise<CliRun> {
  const child = spawn(process.execPath, [mainJs, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return { code, stdout, stderr }
}

async function listen (t: Test, server: Server): Promise<Server> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return server
}

function originOf (server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
