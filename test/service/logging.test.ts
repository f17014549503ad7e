import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startEmulator } from '../../src/emulator/index.js'
import { TOKEN, until } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { openClient } from '../fixtures/ws-client.js'

t.test('an outage seen by many pollers is logged once, and its end once, with a count', async (t) => {
  const emulator = await startEmulator({ tokens: [TOKEN], holdMs: 300 })
  t.teardown(async () => { await emulator.close() })
  const lines: Array<{ msg: string, failures?: number, level: number }> = []
  const config = loadConfig({ LOG_LEVEL: 'info', BACKOFF_BASE_MS: '5', BACKOFF_MAX_MS: '20' })
  const app = await buildApp(config, { channels: [{ name: 'default', url: emulator.url, token: TOKEN }], logStream: { write: (l) => { lines.push(JSON.parse(l)) } } })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/ws`
  const clients = await Promise.all(Array.from({ length: 20 }, async () => await openClient(t, url)))
  const ids = await Promise.all(clients.map(async (c) => (await c.hello()).clientId as string))
  await pollsHeld(emulator, ids.map((clientId) => ({ clientId })), 1)

  emulator.faults.add({ route: 'events', kind: 'status', status: 503, count: Infinity })
  for (const id of ids) emulator.agentReply(TOKEN, id, 'wake up')
  const failed = (): number => emulator.requests.filter((r) => r.route === 'events').length
  const before = failed()
  await until(() => failed() > before + 100, 10_000, 'a hundred failed polls')
  emulator.faults.clear()
  // The polls work again once a new event reaches every client.
  for (const id of ids) emulator.agentReply(TOKEN, id, 'back')
  await Promise.all(clients.map(async (c) => await c.next((f) => f.type === 'event' && JSON.stringify(f).includes('back'))))

  const failures = lines.filter((l) => l.msg.startsWith('upstream poll failed'))
  const recoveries = lines.filter((l) => l.msg === 'upstream polls recovered')
  t.equal(failures.length, 1, 'one line for the outage')
  t.equal(recoveries.length, 1, 'one line for its end')
  t.ok((recoveries[0]?.failures ?? 0) > 100, `with the count (${recoveries[0]?.failures ?? 0})`)
})
