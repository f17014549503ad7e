/**
 * The ceiling for throughput: a bare `ws` server with no upstream, no
 * sessions and no hub, pushing the same frames to the same clients as the
 * bridge does. It answers hello with a welcome so that the load generator
 * connects to it as to the bridge; the harness tells it over IPC to push.
 * With HEARTBEAT_MS set, it pings every socket as the bridge does (the
 * baseline of the idle-CPU scenario); without it, never.
 */
import { WebSocketServer, type WebSocket } from 'ws'
import { randomUUID } from 'node:crypto'

/** The bridge holds a socket's events back past this many queued bytes (OUTBOUND_QUEUE_BYTES); so does this server. */
const QUEUE_BYTES = 1_048_576

const port = Number(process.env.PORT ?? '0')
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: (p) => p.has('chatapi-bridge.v1') ? 'chatapi-bridge.v1' : false })
/** Sockets by cid: the bridge fans an event out to every socket of its (client, cid). */
const groups = new Map<string, WebSocket[]>()

/**
 * The bridge's heartbeat (src/socket/sessions.ts): one timer for every
 * socket, the period cut into up to 25 slices of at least 50 ms, and each
 * socket of a slice sent a WebSocket ping and a `{"type":"ping"}` data frame
 * on its turn. Sockets are closed here only by their clients.
 */
const heartbeatMs = Number(process.env.HEARTBEAT_MS ?? '0')
const slices: Array<Set<WebSocket>> = []
if (heartbeatMs > 0) {
  const n = Math.max(1, Math.min(25, Math.floor(heartbeatMs / 50)))
  for (let i = 0; i < n; i++) slices.push(new Set())
  let tick = 0
  setInterval(() => {
    for (const ws of slices[tick++ % n] as Set<WebSocket>) {
      ws.ping()
      ws.send('{"type":"ping"}')
    }
  }, heartbeatMs / n).unref()
}
let nextSlice = 0

wss.on('connection', (ws) => {
  ws.once('message', (data) => {
    const hello = JSON.parse(String(data)) as { cid?: string, auth?: string }
    const cid = hello.cid ?? randomUUID()
    const clientId = hello.auth ?? randomUUID()
    let group = groups.get(cid)
    if (group === undefined) groups.set(cid, group = [])
    group.push(ws)
    if (slices.length > 0) {
      const slice = slices[nextSlice++ % slices.length] as Set<WebSocket>
      slice.add(ws)
      ws.once('close', () => { slice.delete(ws) })
    }
    ws.send(JSON.stringify({ type: 'welcome', clientId, cid, ticket: clientId, resumed: false, heartbeatMs: heartbeatMs > 0 ? heartbeatMs : 25_000 }))
  })
})

interface Push { frame: string, seconds: number }

/** Pushes `frame` to one random group after another, as fast as the sockets take it, for `seconds`. */
async function push ({ frame, seconds }: Push): Promise<{ events: number, frames: number, seconds: number }> {
  const all = [...groups.values()]
  const started = performance.now()
  const end = started + seconds * 1000
  let events = 0
  let frames = 0
  while (performance.now() < end) {
    // A batch per turn of the event loop, so that sockets get written and the loop stays responsive.
    for (let b = 0; b < 200; b++) {
      const group = all[Math.floor(Math.random() * all.length)] as WebSocket[]
      events++
      for (const ws of group) {
        if (ws.bufferedAmount + frame.length >= QUEUE_BYTES) continue
        ws.send(frame)
        frames++
      }
    }
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { events, frames, seconds: (performance.now() - started) / 1000 }
}

wss.on('listening', () => {
  const address = wss.address()
  process.send?.({ ready: true, port: typeof address === 'object' && address !== null ? address.port : port })
})
process.on('message', (msg: { id: number, command: Push }) => {
  push(msg.command).then((result) => { process.send?.({ id: msg.id, result }) }, (err: unknown) => { process.send?.({ id: msg.id, error: String(err) }) })
})
process.on('disconnect', () => { process.exit(0) })
