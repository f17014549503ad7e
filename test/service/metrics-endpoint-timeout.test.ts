import { connect } from 'node:net'
import t from 'tap'
import { startBridge, until, type Harness } from '../fixtures/bridge.js'

interface Cut { answer: string, afterMs: number }

/**
 * Opens a connection, sends the start of a request and no more, and resolves
 * with what the server answered and when it closed the connection; rejects
 * if it is still open after `withinMs` (Node's own deadlines are a minute and more).
 */
function halfRequest (port: number, withinMs: number): { sent: Promise<void>, cut: Promise<Cut> } {
  let onSent: () => void = () => {}
  const sent = new Promise<void>((resolve) => { onSent = resolve })
  const cut = new Promise<Cut>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let sentAt = 0
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the connection was still open after ${withinMs} ms`))
    }, withinMs)
    socket.on('connect', () => {
      sentAt = Date.now()
      socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n', () => { onSent() })
    })
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ answer: Buffer.concat(chunks).toString(), afterMs: Date.now() - sentAt })
    })
  })
  return { sent, cut }
}

/** The metrics listener's port: it starts in an onListen hook, which Fastify does not wait for. */
async function metricsPortOf (h: Harness): Promise<number> {
  await until(() => h.app.bridge.metricsPort !== undefined, 5000, 'the metrics listener')
  return h.app.bridge.metricsPort as number
}

t.test('the metrics port cuts a request that stops halfway after HTTP_TIMEOUT_MS, as the main port does', async (t) => {
  const h = await startBridge(t, { METRICS_PORT: '0', HTTP_TIMEOUT_MS: '300' })
  const metricsPort = await metricsPortOf(h)
  const mainPort = (h.app.server.address() as { port: number }).port
  const [side, main] = await Promise.all([halfRequest(metricsPort, 5000).cut, halfRequest(mainPort, 5000).cut])
  for (const [name, cut] of [['metrics', side], ['main', main]] as const) {
    t.match(cut.answer, /^HTTP\/1\.1 408 /, `the ${name} port answers 408`)
    t.ok(cut.afterMs >= 290, `the ${name} port waited the deadline: cut after ${cut.afterMs} ms`)
  }
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(res.status, 200, 'a whole scrape is still served')
  t.match(await res.text(), /bridge_upstream_polls_active/)
})

t.test('closing the app cuts a half request on the metrics port instead of waiting for its deadline', async (t) => {
  const h = await startBridge(t, { METRICS_PORT: '0', HTTP_TIMEOUT_MS: '60000' })
  const port = await metricsPortOf(h)
  const half = halfRequest(port, 5000)
  await half.sent
  // A scrape on a later connection, served: the listener has taken the half request's connection before it.
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200)
  await h.app.close()
  const cut = await half.cut
  t.equal(cut.answer, '', 'cut, not answered')
  t.ok(cut.afterMs < 5000, `closed with the app, after ${cut.afterMs} ms`)
})
