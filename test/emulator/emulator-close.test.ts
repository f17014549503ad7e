import t from 'tap'
import { Agent, request } from 'undici'
import { startEmulator } from '../../dist/emulator/index.js'

const TOKEN = 'demo-token'
const POLLS = 2_000

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise(resolve => setTimeout(resolve, 5))
}

t.test(`close() resolves quickly with ${POLLS} held polls`, async t => {
  const em = await startEmulator({ holdMs: 60_000 })
  const agent = new Agent({ connections: POLLS + 10 })
  t.teardown(() => agent.destroy())
  const polls = Array.from({ length: POLLS }, (_, i) =>
    request(`${em.url}/${TOKEN}/events?clientId=u&cid=c${i % 20}`, { dispatcher: agent })
      .then(async res => ({ status: res.statusCode, body: await res.body.json() }), (err: Error) => err))
  await until(() => em.activePolls(TOKEN, 'u') === POLLS)
  t.equal(em.activePolls(TOKEN, 'u', 'c3'), POLLS / 20)
  const started = performance.now()
  await em.close()
  const elapsed = performance.now() - started
  t.ok(elapsed < 3_000, `closed in ${Math.round(elapsed)} ms`)
  t.equal(em.activePolls(TOKEN, 'u'), 0)
  const results = await Promise.all(polls)
  const answered = results.filter((r): r is { status: number, body: unknown } => !(r instanceof Error))
  t.comment(`${answered.length} answered, ${POLLS - answered.length} cut off by the closing sockets`)
  t.ok(answered.every(r => r.status === 200 && JSON.stringify(r.body) === '{"events":[]}'), 'answered polls are answered empty')
  t.equal(em.maxActivePolls(TOKEN, 'u'), POLLS)
  t.equal(await em.close(), undefined, 'closing twice is harmless')
})

t.test('close() drops async answers not yet delivered', async t => {
  let hits = 0
  const { createServer } = await import('node:http')
  const server = createServer((_req, res) => { hits++; res.end() })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const em = await startEmulator({ webhookUrl: `http://127.0.0.1:${port}/`, asyncDelayMs: 100, agentDelayMs: 100 })
  const res = await fetch(`${em.url}/${TOKEN}/async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: 'u', query: 'agent' }) })
  t.equal(res.status, 200)
  await em.close()
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(hits, 0)
})

t.test('close() drops a request held back by a delay fault', async t => {
  const em = await startEmulator({ holdMs: 60_000 })
  em.faults.add({ route: 'events', kind: 'delay', delayMs: 60_000 })
  const held = fetch(`${em.url}/${TOKEN}/events?clientId=u`).then(res => res.status, (err: Error) => err)
  await until(() => em.requests.length === 1)
  const started = performance.now()
  await em.close()
  t.ok(performance.now() - started < 3_000, 'close did not wait for the delay')
  t.type(await held, Error, 'the request was cut off, not served after the close')
  t.equal(em.activePolls(TOKEN, 'u'), 0, 'and no poll was left behind')
})

t.test('listening on every interface gives a connectable origin; a taken port rejects', async t => {
  const em = await startEmulator({ host: '0.0.0.0' })
  t.teardown(() => em.close())
  t.match(em.origin, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(em.url, `${em.origin}/chatapi`)
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=hi`)).status, 200)
  const port = Number(new URL(em.origin).port)
  await t.rejects(startEmulator({ host: '0.0.0.0', port }), { code: 'EADDRINUSE' })
})
