import t from 'tap'
import WebSocket from 'ws'
import { startBridge, TOKEN } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'

async function scrape (url: string): Promise<string> {
  const res = await fetch(url)
  t.equal(res.headers.get('content-type')?.startsWith('text/plain'), true)
  return await res.text()
}

/** The value of an unlabelled metric. */
function value (text: string, metric: string): number {
  const line = text.split('\n').find((l) => l.startsWith(metric + ' '))
  return line === undefined ? NaN : Number(line.split(' ').at(-1))
}

t.test('/metrics reports sockets, hellos, polls, upstream calls, events and their age', async (t) => {
  const h = await startBridge(t)
  const a = await h.client({ cid: 'one' })
  const clientId = a.welcome.clientId as string
  const bad = await h.connect()
  bad.send({ type: 'hello', auth: 'forged' })
  await bad.closed()
  await pollsHeld(h.emulator, { clientId, cid: 'one' }, 1)
  await a.request({ type: 'send', id: '1', query: 'hi' })
  h.emulator.agentReply(TOKEN, clientId, 'metric me')
  await a.next((f) => f.type === 'event' && JSON.stringify(f).includes('metric me'))

  const text = await scrape(`${h.httpUrl}/metrics`)
  t.match(text, /bridge_sockets_open\{channel="default"\} 1/)
  t.match(text, /bridge_hellos_total\{channel="default",result="welcome"\} 1/)
  t.match(text, /bridge_hellos_total\{channel="default",result="unauthorized"\} 1/)
  t.match(text, /bridge_socket_closes_total\{code="4401"\} 1/)
  t.match(text, /bridge_upstream_polls_active 1/)
  t.match(text, /bridge_upstream_request_duration_seconds_count\{call="send",outcome="200"\} 1/)
  t.match(text, /bridge_upstream_request_duration_seconds_count\{call="events",outcome="200"\} \d+/)
  t.match(text, /bridge_events_forwarded_total\{channel="default"\} 3/, 'clientRequest, botResponse, agentResponse')
  t.match(text, /bridge_event_age_seconds_count\{channel="default"\} 3/)
  t.match(text, /bridge_requests_total\{type="send",result="ok"\} 1/)
  t.match(text, /process_cpu_user_seconds_total/)
  t.notMatch(text, new RegExp(TOKEN))
  t.ok(Number.isFinite(value(text, 'bridge_outbound_queue_bytes')))
})

t.test('metrics can be turned off or moved to their own port', async (t) => {
  const off = await startBridge(t, { METRICS: 'false' })
  t.equal((await fetch(`${off.httpUrl}/metrics`)).status, 404)

  const side = await startBridge(t, { METRICS_PORT: '0' })
  t.equal((await fetch(`${side.httpUrl}/metrics`)).status, 404, 'not on the main port')
  const port = side.app.bridge.metricsPort as number
  t.type(port, 'number')
  t.match(await scrape(`http://127.0.0.1:${port}/metrics`), /bridge_upstream_polls_active/)
})

t.test('drain: not ready at once, upgrades refused, sockets closed with 1012 over the window', async (t) => {
  const h = await startBridge(t, { DRAIN_MS: '400' })
  const clients = await Promise.all(Array.from({ length: 8 }, async () => await h.client()))
  const closedAt: number[] = []
  for (const c of clients) c.ws.on('close', () => closedAt.push(Date.now()))
  const started = Date.now()
  const draining = h.app.bridge.drain()
  t.equal((await fetch(`${h.httpUrl}/readyz`)).status, 503, 'not ready while draining')
  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(h.wsUrl, ['chatapi-bridge.v1'])
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.on('open', () => { resolve(101) })
    ws.on('error', () => {})
  })
  t.equal(refused, 503, 'new upgrades are refused')
  await draining
  const codes = await Promise.all(clients.map(async (c) => await c.closed()))
  t.ok(codes.every((c) => c === 1012), 'all closed with 1012')
  const spread = Math.max(...closedAt) - Math.min(...closedAt)
  t.ok(spread > 0, `closes spread over ${spread} ms`)
  t.ok(Math.max(...closedAt) - started < 2000, 'within the window and a grace')
})
