import t from 'tap'
import { Redis } from 'ioredis'
import { feedKeys } from '../../dist/cluster/keys.js'
import { TOKEN } from '../fixtures/bridge.js'
import { pollsHeld } from '../fixtures/waits.js'
import { clusterEnv, redisSkip, SHARED_REDIS, socketOpener, startClusterEmulator, startInstances, type Instance } from '../fixtures/cluster.js'
import type { Frame, TestClient } from '../fixtures/ws-client.js'

const texts = (frames: Frame[]): string[] => frames.map((f) => ((f.event as { event: { text?: string } }).event.text ?? ''))

t.test('a cursor resumes on another instance, from Redis or from the upstream', { skip: redisSkip() }, async (t) => {
  const emulator = await startClusterEmulator(t)
  const redis = new Redis(SHARED_REDIS)
  t.teardown(() => { redis.disconnect() })
  const env = clusterEnv(t, emulator, SHARED_REDIS, { POLL_LINGER_MS: '0' })
  const [one, two] = await startInstances(t, env, 2) as [Instance, Instance]
  const open = socketOpener(t)
  const said = async (c: TestClient, text: string): Promise<void> => {
    await c.next((f) => f.type === 'event' && texts([f])[0] === text)
  }

  const a = await open(one, { cid: 'tab' })
  const clientId = a.welcome.clientId as string
  const ticket = a.welcome.ticket as string
  const stream = feedKeys(env.prefix, { channel: 'default', clientId, cid: 'tab', all: true }).stream
  await pollsHeld(emulator, { clientId, cid: 'tab' }, 1, 10_000)
  for (const text of ['e1', 'e2', 'e3']) {
    emulator.agentReply(TOKEN, clientId, text)
    await said(a, text)
  }
  const afterE1 = a.events()[0]!.cursor as string
  const afterE2 = a.events()[1]!.cursor as string

  await t.test('from the stream in Redis, on an instance that had no socket of the connection', async (t) => {
    const b = await open(two, { auth: ticket, cid: 'tab', resume: afterE2 })
    t.equal(b.welcome.resumed, true)
    emulator.agentReply(TOKEN, clientId, 'e4')
    await said(b, 'e4')
    t.same(texts(b.events()), ['e3', 'e4'])
    b.close()
    await b.closed()
  })

  await t.test('from the upstream, when the stream lost the cursor\'s event and has later ones', async (t) => {
    // The stream is cut (Redis lost it, say) while the first instance still polls and appends.
    await redis.del(stream)
    emulator.agentReply(TOKEN, clientId, 'e5')
    await said(a, 'e5')
    const c = await open(two, { auth: ticket, cid: 'tab', resume: afterE1 })
    t.equal(c.welcome.resumed, true)
    await said(c, 'e5')
    t.same(texts(c.events()), ['e2', 'e3', 'e4', 'e5'], 'the gap up to the stream is read from the upstream, once')
    c.close()
    await c.closed()
  })

  await t.test('from the upstream, when nothing of the connection is left in Redis', async (t) => {
    const last = a.events().at(-1)!.cursor as string
    a.close()
    await a.closed()
    await pollsHeld(emulator, { clientId, cid: 'tab' }, 0, 10_000)
    await redis.del(stream)
    emulator.agentReply(TOKEN, clientId, 'e6')
    const d = await open(two, { auth: ticket, cid: 'tab', resume: last })
    t.equal(d.welcome.resumed, true)
    await said(d, 'e6')
    emulator.agentReply(TOKEN, clientId, 'e7')
    await said(d, 'e7')
    t.same(texts(d.events()), ['e6', 'e7'], 'what came while nobody polled, then live events, once each')
  })

  await t.test('the welcome\'s cursor of a socket that had no event yet resumes on another instance', async (t) => {
    const q1 = await open(one, { auth: ticket, cid: 'quiet' })
    await pollsHeld(emulator, { clientId, cid: 'quiet' }, 1, 10_000)
    emulator.agentReply(TOKEN, clientId, 'x1')
    await said(q1, 'x1')
    // A socket on another instance: its welcome names the stream's last event, and an event right after the welcome is its own.
    const q2 = await open(two, { auth: ticket, cid: 'quiet' })
    t.type(q2.welcome.cursor, 'string', 'the welcome carries a cursor')
    emulator.agentReply(TOKEN, clientId, 'x2')
    await said(q2, 'x2')
    t.same(texts(q2.events()), ['x2'])
    const cursor = q2.welcome.cursor as string
    q2.close()
    await q2.closed()
    const q3 = await open(two, { auth: ticket, cid: 'quiet', resume: cursor })
    t.equal(q3.welcome.resumed, true)
    await said(q3, 'x2')
    t.same(texts(q3.events()), ['x2'], 'what came after the welcome, once')
    q1.close()
    q3.close()
  })

  await t.test('a welcome cursor from before the first event resumes from the connection\'s start on another instance', async (t) => {
    const n1 = await open(one, { cid: 'new' })
    const newcomer = n1.welcome.clientId as string
    await pollsHeld(emulator, { clientId: newcomer, cid: 'new' }, 1, 10_000)
    // The events reach the socket and the stream, but the client drops before it processes them.
    emulator.agentReply(TOKEN, newcomer, 'n1')
    emulator.agentReply(TOKEN, newcomer, 'n2')
    await said(n1, 'n2')
    n1.close()
    await n1.closed()
    const n2 = await open(two, { auth: n1.welcome.ticket, cid: 'new', resume: n1.welcome.cursor })
    t.equal(n2.welcome.resumed, true)
    await said(n2, 'n2')
    emulator.agentReply(TOKEN, newcomer, 'n3')
    await said(n2, 'n3')
    t.same(texts(n2.events()), ['n1', 'n2', 'n3'], 'the connection from its start, then live events, once each')
  })
})
