import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { TOKEN } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { clusterEnv, redisSkip, startClusterEmulator, startInstances, startRedis, type Instance } from '../fixtures/cluster.js'
import { openStream, type SseClient, type SseOptions } from '../fixtures/sse-client.js'
import type { Frame } from '../fixtures/ws-client.js'

/**
 * The HTTP transport across instances, with no stickiness: a stream lives on
 * one instance, and its POSTs may reach any other, which forwards them
 * through Redis (src/cluster/stream-routes.ts).
 */

const textOf = (f: Frame): string => (f.event as { event?: { text?: string } }).event?.text ?? ''
const agentEvent = (text: string) => (f: Frame): boolean => f.type === 'event' && textOf(f) === text
const postUrl = (inst: Instance): string => `${inst.http}/v1/sse`
/** Welcomes wait for the connection's upstream poll, which a takeover of a dead instance's lease delays. */
const WELCOME_MS = 15_000

/** A stream open on `on` whose POSTs go to `via`, welcomed after `hello`. */
async function streamVia (t: Test, on: Instance, via: Instance, hello: Record<string, unknown>, opts: SseOptions = {}): Promise<SseClient & { welcome: Frame }> {
  const c = await openStream(t, on.http, { ...opts, postUrl: postUrl(via) })
  t.equal(c.status, 200, `a stream opened on ${on.name}`)
  t.equal(c.sse[0]?.event, 'stream', 'its key comes first')
  c.send({ type: 'hello', ...hello })
  t.same(await c.sent(), [204], `the hello posted to ${via.name} taken`)
  return Object.assign(c, { welcome: await c.next((f) => f.type === 'welcome', WELCOME_MS) })
}

/** A POST answered, and how long it took. */
async function timedPost (c: SseClient, body: string, url: string): Promise<{ status: number, body: Record<string, unknown>, ms: number }> {
  const started = Date.now()
  const res = await c.post(body, {}, url)
  return { ...res, ms: Date.now() - started }
}

t.test('a stream on one instance takes its frames from POSTs to any other, in order', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const [a, b, c] = await startInstances(t, clusterEnv(t, emulator), 3) as [Instance, Instance, Instance]
  const s = await streamVia(t, a, b, { cid: 'tab' })
  t.match(s.key, /^[\w-]+\.[\w-]+$/)
  t.equal(s.welcome.resumed, false, 'the hello, posted to another instance, is welcomed on the stream')
  const clientId = s.welcome.clientId as string

  t.match(await s.request({ type: 'send', id: 'r1', query: 'through another instance' }), { type: 'result', id: 'r1', ok: true }, 'a send posted to B, its result on A\'s stream')
  await pollsHeld(emulator, { clientId, cid: 'tab' }, 1, 10_000)
  emulator.agentReply(TOKEN, clientId, 'an agent writes')
  const ev = await s.next(agentEvent('an agent writes'))
  t.equal(s.sse.find((e) => e.data.includes('an agent writes'))?.id, ev.cursor, 'an agent reply on the stream, its cursor as SSE id')
  s.send({ type: 'ping' })
  await s.next((f) => f.type === 'pong')
  t.ok((await s.sent()).every((x) => x === 204), 'every forwarded POST answered 204')

  // Several frames of one POST, then POSTs one after the other to every instance (the stream's own too):
  // the stream's instance takes them in the order they were posted, and sends of one client run in that order.
  const ids = ['b1', 'b2', 'b3', 'p1', 'p2', 'p3', 'p4']
  const before = s.posted.length
  for (const id of ids.slice(0, 3)) s.send({ type: 'send', id, query: `q-${id}` })
  t.equal((await s.sent()).length, before + 1, 'the three sends went in one POST')
  for (const [k, id] of ids.slice(3).entries()) {
    s.postUrl = postUrl([c, b, a, c][k] as Instance)
    s.send({ type: 'send', id, query: `q-${id}` })
    await s.sent()
  }
  t.ok(s.posted.every((x) => x === 204), 'every POST answered 204')
  await s.next((f) => f.type === 'result' && f.id === 'p4', 10_000)
  const results = s.frames.filter((f) => f.type === 'result' && ids.includes(f.id as string))
  t.same(results.map((f) => f.id), ids, 'results in the order the frames were posted')
  t.ok(results.every((f) => f.ok === true), 'every send taken')
  const upstream = emulator.requests.filter((r) => r.route === 'send' && r.clientId === clientId).map((r) => (r.body as { query?: string }).query)
  t.same(upstream.filter((q) => q?.startsWith('q-') === true), ids.map((id) => `q-${id}`), 'the upstream got them in that order')
  t.equal(s.closeCode, undefined, 'the stream is still open')
})

for (const how of ['stops', 'is killed'] as const) {
  t.test(`the stream's instance ${how}: its key is answered 404 at once elsewhere, and a new stream on another instance resumes`, { skip: redisSkip() }, async (t) => {
    const emulator = await startClusterEmulator(t)
    const [a, b, c] = await startInstances(t, clusterEnv(t, emulator), 3) as [Instance, Instance, Instance]
    const s = await streamVia(t, a, b, { cid: 'tab' })
    const clientId = s.welcome.clientId as string
    const ticket = s.welcome.ticket as string
    await pollsHeld(emulator, { clientId, cid: 'tab' }, 1, 10_000)
    for (const text of ['e1', 'e2']) {
      emulator.agentReply(TOKEN, clientId, text)
      await s.next(agentEvent(text))
    }
    const key = s.key as string

    if (how === 'stops') {
      const exited = a.terminate()
      t.equal(await s.closed(), 1012, 'a draining instance closes its streams with 1012')
      t.equal(await exited, 0)
    } else {
      a.child.kill('SIGKILL')
      await a.exited
      t.equal(await s.closed(), 1006, 'the stream of a killed instance ends without a close event')
    }
    t.equal(s.sse.filter((e) => e.event === 'close').length, how === 'stops' ? 1 : 0)

    // Events while the client has no stream open.
    emulator.agentReply(TOKEN, clientId, 'e3')
    emulator.agentReply(TOKEN, clientId, 'e4')

    const gone = await timedPost(s, `${key}\n{"type":"ping"}`, postUrl(b))
    t.same({ status: gone.status, body: gone.body }, {
      status: 404,
      body: { error: 'NO_SUCH_STREAM', message: 'no such event stream (it ended, or its instance stopped): open a new one and resume' }
    }, 'a POST of the stopped instance\'s key to another instance')
    t.ok(gone.ms < 1000, `answered at once (${gone.ms} ms), not after a wait`)
    t.equal((await timedPost(s, `${key}\n{"type":"ping"}`, postUrl(c))).status, 404, 'on every instance')

    // Reconnected as an EventSource would: Last-Event-ID of the last event seen, with its ticket and cid.
    const r = await streamVia(t, b, c, { auth: ticket, cid: 'tab' }, { lastEventId: s.lastId })
    t.equal(r.welcome.resumed, true, 'resumed on another instance')
    t.equal(r.welcome.clientId, clientId)
    await r.next(agentEvent('e4'), 10_000)
    emulator.agentReply(TOKEN, clientId, 'e5')
    await r.next(agentEvent('e5'), 10_000)
    t.same(r.events().map(textOf), ['e3', 'e4', 'e5'], 'what came meanwhile, then live events, each once')
    t.match(await r.request({ type: 'send', id: 'after', query: 'still here' }), { ok: true }, 'its POSTs are forwarded too')
  })
}

t.test('a key of an instance that never existed is answered 404 at once', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const [a, b] = await startInstances(t, clusterEnv(t, emulator), 2) as [Instance, Instance]
  const s = await streamVia(t, a, b, {})
  const ghost = await timedPost(s, `ghost-instance.${randomBytes(18).toString('base64url')}\n{"type":"ping"}`, postUrl(b))
  t.equal(ghost.status, 404)
  t.equal(ghost.body.error, 'NO_SUCH_STREAM')
  t.ok(ghost.ms < 1000, `answered at once (${ghost.ms} ms)`)
  // A key of a live instance that names none of its streams, posted to that instance: it answers 404 itself.
  const unknown = `${(s.key as string).split('.')[0] as string}.${randomBytes(18).toString('base64url')}`
  t.equal((await s.post(`${unknown}\n{"type":"ping"}`, {}, postUrl(a))).status, 404, 'an unknown stream on its own instance')
  t.equal((await s.post('not a key\n{"type":"ping"}', {}, postUrl(b))).status, 400, 'no key at all')
  t.equal(s.closeCode, undefined)
})

t.test('Redis unreachable: a POST that must be forwarded gets 503, the stream\'s own instance still takes it, and forwarding comes back with Redis', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = await startRedis(t)
  const [a, b] = await startInstances(t, clusterEnv(t, emulator, redis.url), 2) as [Instance, Instance]
  const s = await streamVia(t, a, b, { cid: 'tab' })
  const key = s.key as string

  await redis.stop()
  await Promise.all([a, b].map(async (i) => await i.log((l) => l.msg.startsWith('Redis is unavailable'))))
  const down = await timedPost(s, `${key}\n{"type":"ping"}`, postUrl(b))
  t.equal(down.status, 503)
  t.equal(down.body.error, 'UNAVAILABLE')
  t.ok(down.ms < 3000, `answered within about REDIS_TIMEOUT_MS (${down.ms} ms)`)
  const pongs = (): number => s.frames.filter((f) => f.type === 'pong').length
  t.equal((await s.post(`${key}\n{"type":"ping"}`, {}, postUrl(a))).status, 204, 'the stream\'s own instance needs no Redis')
  await s.next((f) => f.type === 'pong')
  t.equal(pongs(), 1, 'only the POST to its own instance reached the stream')

  const marks = [a, b].map((i) => i.logs.length)
  await redis.start()
  await Promise.all([a, b].map(async (i, k) => await i.log((l) => l.msg === 'Redis is available' && i.logs.indexOf(l) >= (marks[k] as number))))
  // The stream's instance subscribes again once its connection is back; no event says when, so a ping is posted until taken.
  const started = Date.now()
  for (let status = 0; status !== 204;) {
    if (Date.now() - started > 10_000) throw new Error(`forwarding did not come back (last status ${status})`)
    status = (await s.post(`${key}\n{"type":"ping"}`, {}, postUrl(b))).status
  }
  // Frames of one stream are taken in order: once this result is in, every pong before it is too.
  t.match(await s.request({ type: 'getState', id: 'back' }), { ok: true }, 'forwarded again')
  t.equal(pongs(), 2, 'the ping of the POST answered 503 never reached the stream, later either')
  t.equal(s.closeCode, undefined, 'the stream stayed open through the outage')
})
