import t from 'tap'
import { clusterEnv, redisSkip, socketOpener, startClusterEmulator, startInstances, type Instance } from '../fixtures/cluster.js'
import type { Frame, TestClient } from '../fixtures/ws-client.js'

// The request bounds where results and send lanes live in Redis: a result too large for a
// client's share is not stored, and a send whose time runs out in the shared lane never goes.

const isResult = (id: string) => (f: Frame): boolean => f.type === 'result' && f.id === id

/** Sends a request again and waits for its new result. */
async function resend (c: TestClient, req: Record<string, unknown> & { type: string, id: string }): Promise<Frame> {
  const answer = c.upcoming(isResult(req.id))
  c.send(req)
  return await answer
}

t.test('request bounds hold across instances', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const env = clusterEnv(t, emulator, undefined, { REQUEST_TIMEOUT_MS: '1000', RESULT_CACHE_CLIENT_BYTES: '8192' })
  const [one, two] = await startInstances(t, env, 2) as [Instance, Instance]
  const open = socketOpener(t)
  const a = await open(one, { cid: 'tab-1' })
  const b = await open(two, { auth: a.welcome.ticket, cid: 'tab-2' })
  const clientId = a.welcome.clientId as string
  const upstream = (route: string): number => emulator.requests.filter((r) => r.route === route && r.clientId === clientId).length

  await t.test('a result larger than a client\'s share is not stored; a small one is', async (t) => {
    t.equal((await a.request({ type: 'setState', id: 'set-small', state: { n: 1 } })).ok, true)
    t.equal((await a.request({ type: 'getState', id: 'small' })).ok, true)
    await b.request({ type: 'getState', id: 'small' })
    t.equal(upstream('getState'), 1, 'the small result came from Redis')
    t.equal((await a.request({ type: 'setState', id: 'set-big', state: { pad: 'x'.repeat(10_000) } })).ok, true)
    t.equal((await a.request({ type: 'getState', id: 'big' })).ok, true)
    t.equal((await b.request({ type: 'getState', id: 'big' })).ok, true)
    t.equal(upstream('getState'), 3, 'the large one ran again')
  })

  await t.test('a send whose time runs out in the shared lane never goes, and its resend runs', async (t) => {
    emulator.faults.add({ route: 'send', kind: 'hang', count: 1 })
    const before = upstream('send')
    a.send({ type: 'send', id: 'first', query: 'lane-first' })
    b.send({ type: 'send', id: 'second', query: 'lane-second' })
    const results = await Promise.all([a.next(isResult('first'), 5000), b.next(isResult('second'), 5000)])
    const sent = results.filter((r) => /did not answer in time/.test(JSON.stringify(r)))
    const unsent = results.filter((r) => /did not reach the upstream/.test(JSON.stringify(r)))
    t.equal(sent.length, 1, 'the one that took the lane first timed out upstream')
    t.equal(unsent.length, 1, 'the one behind it never went')
    t.equal(upstream('send') - before, 1)
    const id = unsent[0]?.id as string
    const again = await resend(id === 'first' ? a : b, { type: 'send', id, query: `lane-${id}` })
    t.equal(again.ok, true, 'sent again, it runs')
    t.equal(upstream('send') - before, 2)
  })
})
