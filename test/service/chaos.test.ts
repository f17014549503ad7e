import t from 'tap'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { CloseCode } from '../../dist/socket/errors.js'
import { startEmulator, type Fault } from '../../dist/emulator/index.js'
import { BridgeClient, MemoryStorage, type WebSocketConstructor, type BridgeEvent } from '../../packages/client/src/index.js'
import { TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'

/**
 * Chaos: many clients with several tabs each, while sockets are dropped at
 * random, the bridge restarts, and the upstream fails in every way it can.
 * Every tab must see exactly its client's events, each once and in order,
 * and every request must settle once and reach the upstream at most once.
 * `npm run chaos` runs it longer and larger (CHAOS_SECONDS, CHAOS_CLIENTS, CHAOS_TABS).
 */
const CLIENTS = Number(process.env.CHAOS_CLIENTS ?? 100)
const TABS = Number(process.env.CHAOS_TABS ?? 3)
const SECONDS = Number(process.env.CHAOS_SECONDS ?? 12)

const ENV = {
  TICKET_SECRET: 'chaos-ticket-secret-0123456789',
  LOG_LEVEL: 'silent',
  BACKOFF_BASE_MS: '20',
  BACKOFF_MAX_MS: '300',
  POLL_TIMEOUT_MS: '1500',
  REQUEST_TIMEOUT_MS: '1000',
  POLL_STARTS_PER_S: '100000',
  RATE_LIMIT_PER_S: '1000',
  RATE_LIMIT_BURST: '1000',
  HEARTBEAT_MS: '2000',
  EVENT_BUFFER: '1000',
  POLL_LINGER_MS: '2000'
}

const POLL_FAULTS: Fault[] = [
  { kind: 'status', status: 503 }, { kind: 'status', status: 429, retryAfter: 0 }, { kind: 'html' }, { kind: 'notJson' },
  { kind: 'badShape' }, { kind: 'truncated' }, { kind: 'reset' }, { kind: 'duplicate' }, { kind: 'reorder' }, { kind: 'hang' }
]
// Faults that refuse a request before the upstream acts on it: the request fails, and is never done twice.
const SEND_FAULTS: Fault[] = [{ kind: 'status', status: 503 }, { kind: 'html' }, { kind: 'reset' }]

t.test('chaos: no event lost or doubled, every request answered once', { timeout: (SECONDS * 2 + 300) * 1000 }, async (t) => {
  const began = Date.now()
  const phase = (name: string): void => { t.comment(`${name} at ${((Date.now() - began) / 1000).toFixed(1)} s`) }
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 500 })
  t.teardown(async () => { await emulator.close() })
  const config = loadConfig(ENV)
  let app: FastifyInstance
  let url = ''
  const start = async (): Promise<void> => {
    app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/ws`
  }
  await start()
  t.teardown(async () => { await app.close() })

  interface Tab { client: BridgeClient, clientIndex: number, seen: number[], all: Set<string>, gaps: number, story: string[] }
  const clientIds: string[] = []
  const gapReasons: string[] = []
  const tabs: Tab[] = []
  const makeTab = (clientIndex: number, auth: string | undefined, cid: string): Tab => {
    const client = new BridgeClient({
      url: () => url,
      cid,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      storage: new MemoryStorage(),
      requestTimeoutMs: 20_000,
      backoff: { baseMs: 30, maxMs: 400 },
      ...(auth === undefined ? {} : { auth })
    })
    const tab: Tab = { client, clientIndex, seen: [], all: new Set(), gaps: 0, story: [] }
    client.on('welcome', (w) => { tab.story.push(`W${w.resumed ? 'r' : ''}@${((Date.now() - began) / 1000).toFixed(1)}`) })
    client.on('event', (ev: BridgeEvent) => {
      const key = JSON.stringify(ev.event)
      if (tab.all.has(key)) tab.seen.push(-1) // a doubled event of any kind shows as -1
      tab.all.add(key)
      if (ev.type === 'seq') tab.seen.push((ev.event as { n: number }).n)
      tab.story.push(ev.type === 'seq' ? String((ev.event as { n: number }).n) : ev.type[0] ?? '?')
    })
    client.on('gap', (g) => { tab.gaps++; gapReasons.push(g.reason) })
    tabs.push(tab)
    return tab
  }
  for (let i = 0; i < CLIENTS; i++) {
    const first = makeTab(i, undefined, `c${i}-t0`)
    const w = await first.client.connect()
    clientIds.push(w.clientId)
    for (let j = 1; j < TABS; j++) await makeTab(i, w.ticket, `c${i}-t${j}`).client.connect()
  }
  t.teardown(() => { for (const tab of tabs) tab.client.close() })
  await pollsHeld(emulator, clientIds.map((clientId) => ({ clientId })), TABS, 60_000)
  phase('connected')

  const next = clientIds.map(() => 0)
  let drops = 0
  let faults = 0
  let restarts = 0
  const requests: Array<{ client: number, query: string, settled: number, ok: boolean }> = []
  const stopAt = Date.now() + SECONDS * 1000
  let restarted = false
  const acrossRestart = new Set<string>()
  let tick = 0
  while (Date.now() < stopAt) {
    tick++
    // One event per client and tick: two in one upstream millisecond carry no order but the answer's,
    // which the 'reorder' fault reverses, and no bridge could tell.
    const picked = new Set<number>()
    for (let k = 0; k < Math.max(1, CLIENTS / 10); k++) picked.add(Math.floor(Math.random() * CLIENTS))
    for (const c of picked) emulator.publish(TOKEN, clientIds[c] as string, 'seq', { n: next[c]!++ })
    if (tick % 5 === 0) {
      const sessions = [...app!.bridge.sessions]
      const s = sessions[Math.floor(Math.random() * sessions.length)]
      if (s !== undefined) {
        if (Math.random() < 0.5) s.cut()
        else s.close(Math.random() < 0.5 ? CloseCode.RESTART : CloseCode.INTERNAL_ERROR)
        drops++
      }
    }
    if (tick % 7 === 0) {
      emulator.faults.add({ route: 'events', ...POLL_FAULTS[Math.floor(Math.random() * POLL_FAULTS.length)]! })
      faults++
    }
    if (tick % 11 === 0) {
      emulator.faults.add({ route: 'send', ...SEND_FAULTS[Math.floor(Math.random() * SEND_FAULTS.length)]! })
      faults++
    }
    if (tick % 3 === 0) {
      const tab = tabs[Math.floor(Math.random() * tabs.length)]!
      const r = { client: tab.clientIndex, query: `q-${tab.clientIndex}-${requests.length}`, settled: 0, ok: false }
      requests.push(r)
      tab.client.send(r.query).then(() => { r.settled++; r.ok = true }, () => { r.settled++ })
    }
    if (!restarted && Date.now() > stopAt - (SECONDS * 1000) / 2) {
      restarted = true
      // One process keeps its result cache in memory: what is in flight now may reach the upstream again after the restart.
      for (const r of requests) if (r.settled === 0) acrossRestart.add(r.query)
      phase('restarting')
      await app!.close()
      phase('closed')
      await start()
      phase('restarted')
      restarts++
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  phase('chaos over')
  emulator.faults.clear()
  for (let c = 0; c < CLIENTS; c++) emulator.publish(TOKEN, clientIds[c] as string, 'seq', { n: next[c]!++ })
  const complete = (tab: Tab): boolean => tab.seen.length >= next[tab.clientIndex]!
  await until(() => tabs.every(complete), 60_000, 'every tab to catch up').catch(() => {
    const behind = tabs.filter((tab) => !complete(tab))
    t.comment(`${behind.length} tabs behind, e.g. ` + behind.slice(0, 3).map((tab) => {
      const got = new Set(tab.seen)
      const missing = Array.from({ length: next[tab.clientIndex]! }, (_, n) => n).filter((n) => !got.has(n))
      return `client ${tab.clientIndex} (${tab.gaps} gaps) missing ${missing.join(',')} story ${tab.story.slice(0, 14).join(' ')}`
    }).join(' | '))
  })
  phase('caught up')
  await until(() => requests.every((r) => r.settled > 0), 30_000, 'every request to settle')

  let lost = 0
  let doubled = 0
  let outOfOrder = 0
  for (const tab of tabs) {
    const want = next[tab.clientIndex]!
    const got = tab.seen.filter((n) => n >= 0)
    doubled += tab.seen.length - got.length + (got.length - new Set(got).size)
    lost += want - new Set(got).size
    for (let i = 1; i < got.length; i++) {
      if (got[i]! > got[i - 1]!) continue
      outOfOrder++
      t.comment(`out of order: client ${tab.clientIndex} ${got.slice(Math.max(0, i - 4), i + 3).join(',')}; story ${tab.story.join(' ').slice(-300)}`)
    }
  }
  const gaps = tabs.reduce((n, tab) => n + tab.gaps, 0)
  const upstreamSends = new Map<string, number>()
  for (const rec of emulator.requests) {
    if (rec.route !== 'send') continue
    const q = (rec.body as { query?: string } | undefined)?.query
    if (q !== undefined) upstreamSends.set(q, (upstreamSends.get(q) ?? 0) + 1)
  }
  // A send refused by a fault reaches the emulator's log but not its bot; count what the bot answered.
  const answered = new Map<string, number>()
  for (let c = 0; c < CLIENTS; c++) {
    const res = await fetch(`${emulator.url}/${TOKEN}/client/${clientIds[c]!}/history?limit=1000`)
    const { messages } = await res.json() as { messages: Array<{ request: { query?: string } | null }> }
    for (const m of messages) if (m.request?.query !== undefined) answered.set(m.request.query, (answered.get(m.request.query) ?? 0) + 1)
  }
  const events = next.reduce((a, b) => a + b, 0)
  t.comment(`clients ${CLIENTS}, tabs ${tabs.length}, events ${events} (${events * TABS} deliveries), drops ${drops}, faults ${faults}, restarts ${restarts}, requests ${requests.length} (${requests.filter((r) => r.ok).length} ok)`)
  t.comment(`lost ${lost}, doubled ${doubled}, out of order ${outOfOrder}, gaps ${gaps}${gaps > 0 ? ': ' + [...new Set(gapReasons)].join('; ') : ''}`)
  t.equal(lost, 0, 'no event lost')
  t.equal(doubled, 0, 'no event doubled')
  t.equal(outOfOrder, 0, 'every tab in order')
  t.equal(gaps, 0, 'every resume honoured')
  t.ok(requests.every((r) => r.settled === 1), 'every request settled exactly once')
  const twice = [...answered.entries()].filter(([q, n]) => n > 1 && !acrossRestart.has(q))
  t.same(twice, [], `no request reached the bot twice (${acrossRestart.size} were in flight across the restart)`)
  const notOnce = requests.filter((r) => r.ok && answered.get(r.query) !== 1 && !acrossRestart.has(r.query)).map((r) => `${r.query}: ${answered.get(r.query) ?? 0}`)
  t.same(notOnce, [], 'every request answered ok was done upstream once')
  t.ok(upstreamSends.size > 0)
})
