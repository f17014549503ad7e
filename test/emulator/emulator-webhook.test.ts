import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { ChatResponse } from '../../dist/emulator/bot.js'
import type { HistoryMessage } from '../../dist/emulator/channel-store.js'
import { startEmulator, type Emulator, type EmulatorOptions, type UpstreamEvent } from '../../dist/emulator/index.js'
import { pollsHeld } from '../fixtures/waits.js'

const TOKEN = 'demo-token'

type Outcome = 'ok' | 'fail' | 'drop'
interface Attempt { body: ChatResponse[], outcome: Outcome }

/** A webhook receiver whose answer to each attempt (1-based) is chosen by `behave`. */
async function receiver (t: Test, behave: (attempt: number) => Outcome = () => 'ok') {
  const attempts: Attempt[] = []
  let wake: Array<() => void> = []
  const server = createServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', chunk => { raw += chunk })
    req.on('end', () => {
      const outcome = behave(attempts.length + 1)
      attempts.push({ body: JSON.parse(raw) as ChatResponse[], outcome })
      if (outcome === 'drop') res.socket?.destroy()
      else res.writeHead(outcome === 'ok' ? 204 : 500).end()
      for (const fn of wake) fn()
      wake = []
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise(resolve => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    attempts,
    /** Resolves once `count` attempts have arrived. */
    async reached (count: number): Promise<void> {
      while (attempts.length < count) await new Promise<void>(resolve => wake.push(resolve))
    }
  }
}

async function start (t: Test, options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulator(options)
  t.teardown(() => emulator.close())
  return emulator
}

async function send<T = ChatResponse> (em: Emulator, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${em.url}/${TOKEN}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return await res.json() as T
}

const pause = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

t.test('an async answer goes to the webhook, retried until it is taken', async t => {
  const hook = await receiver(t, n => (n === 1 ? 'fail' : n === 2 ? 'drop' : 'ok'))
  const em = await start(t, { webhookUrl: hook.url, webhookRetryDelayMs: 20, asyncDelayMs: 10 })
  const { questionId, ...rest } = await send<{ questionId: string }>(em, '/async', { clientId: 'u', query: 'buttons', cid: 'c' })
  t.same(rest, {}, 'the immediate answer is the question id alone')
  await hook.reached(3)
  await pause(200)
  t.same(hook.attempts.map(a => a.outcome), ['fail', 'drop', 'ok'], 'three attempts, one success, no more')
  const payload = hook.attempts[0]?.body ?? []
  t.ok(hook.attempts.every(a => JSON.stringify(a.body) === JSON.stringify(payload)), 'each attempt carries the same payload')
  t.equal(payload.length, 1)
  t.match(payload[0], { token: TOKEN, clientId: 'u', questionId, cid: 'c', blockForm: false, data: { nlpClass: '/buttons', answer: 'Pick one:' } })

  const events = await (await fetch(`${em.url}/${TOKEN}/events?clientId=u&ts=0&all=true`)).json() as { events: UpstreamEvent[] }
  t.same(events.events.map(e => e.type), ['clientRequest'], 'the async answer is not an event')
  const history = await (await fetch(`${em.url}/${TOKEN}/client/u/history`)).json() as { messages: HistoryMessage[] }
  t.same(history.messages.map(m => m.questionId), [questionId], 'but it is in the history')
})

t.test('a delivery is given up after four attempts', async t => {
  const hook = await receiver(t, () => 'fail')
  const em = await start(t, { webhookUrl: hook.url, webhookRetryDelayMs: 10 })
  em.campaign(TOKEN, ['u'], 'news')
  await hook.reached(4)
  await pause(300)
  t.equal(hook.attempts.length, 4)
})

t.test('agent replies and campaigns reach the webhook in the response shape', async t => {
  const hook = await receiver(t)
  const em = await start(t, { webhookUrl: hook.url })
  const item = em.agentReply(TOKEN, 'u', 'I can help')
  t.match(item, { type: 'agentResponse', event: { clientId: 'u', text: 'I can help', token: TOKEN, data: { replies: [{ type: 'text', text: 'I can help', state: '/agent' }] } } })
  await hook.reached(1)
  t.match(hook.attempts[0]?.body, [{ token: TOKEN, clientId: 'u', questionId: item.event.questionId, data: { answer: 'I can help', nlpClass: '/agent' } }])
  em.campaign(TOKEN, ['a', 'b'], 'sale today')
  await hook.reached(2)
  const campaign = hook.attempts[1]?.body ?? []
  t.same(campaign.map(r => r.clientId), ['a', 'b'], 'one array, one response per client')
  t.ok(campaign.every(r => r.data.answer === 'sale today'))
})

t.test('a hand-over brings the simulated agent to events and webhook', async t => {
  const hook = await receiver(t)
  const em = await start(t, { webhookUrl: hook.url, agentDelayMs: 20, holdMs: 10_000 })
  // A connection's events start at its first poll: the poll is held before the message that brings the agent.
  const polling = fetch(`${em.url}/${TOKEN}/events?clientId=u&cid=c`)
  await pollsHeld(em, { clientId: 'u', cid: 'c', token: TOKEN }, 1)
  const answer = await send(em, '', { clientId: 'u', query: 'I want an operator', cid: 'c' })
  t.match(answer.data.replies[1], { type: 'switch', firstMessage: 'I want an operator', closeChatPhrases: Array, state: '/agent' })
  const polled = await (await polling).json() as { events: UpstreamEvent[] }
  t.equal(polled.events.length, 1)
  t.match(polled.events[0], { type: 'agentResponse', event: { clientId: 'u', text: /I want an operator/ } })
  await hook.reached(1)
  t.equal(hook.attempts[0]?.body[0]?.questionId, polled.events[0]?.event.questionId)
})

t.test('the bot speaks up when its timeout expires, not when the client writes first', async t => {
  const hook = await receiver(t)
  const em = await start(t, { webhookUrl: hook.url })
  const answer = await send(em, '', { clientId: 'quiet', query: 'timeout 0.05' })
  t.match(answer.data.replies[1], { type: 'timeout', interval: 0.05, targetState: String, state: '/timeout' })
  const plain = await send(em, '', { clientId: 'u', query: 'timeout' })
  t.match(plain.data.replies[1], { type: 'timeout', interval: 3 }, 'three seconds by default')
  await send(em, '', { clientId: 'busy', query: 'timeout 0.1' })
  await send(em, '', { clientId: 'busy', query: 'still here' })
  await hook.reached(1)
  t.match(hook.attempts[0]?.body, [{ clientId: 'quiet', data: { nlpClass: answer.data.replies[1]?.targetState } }])
  await pause(300)
  t.same(hook.attempts.map(a => a.body[0]?.clientId), ['quiet'], 'the client that wrote got no timeout')
})

t.test('setWebhookUrl switches delivery on and off', async t => {
  const hook = await receiver(t)
  const em = await start(t)
  em.campaign(TOKEN, ['u'], 'lost')
  em.setWebhookUrl(hook.url)
  em.campaign(TOKEN, ['u'], 'seen')
  await hook.reached(1)
  em.setWebhookUrl(undefined)
  em.campaign(TOKEN, ['u'], 'lost too')
  await pause(100)
  t.same(hook.attempts.map(a => a.body[0]?.data.answer), ['seen'])
})

t.test('an unreachable webhook never hurts the emulator, and close() drops pending retries', async t => {
  const hook = await receiver(t, () => 'fail')
  const em = await startEmulator({ webhookUrl: 'http://127.0.0.1:1/nowhere', webhookRetryDelayMs: 50 })
  em.campaign(TOKEN, ['u'], 'x')
  t.equal((await fetch(`${em.url}/${TOKEN}?clientId=u&query=hi`)).status, 200)
  em.setWebhookUrl(hook.url)
  em.campaign(TOKEN, ['u'], 'y')
  await hook.reached(1)
  const started = Date.now()
  await em.close()
  t.ok(Date.now() - started < 2_000, 'close does not wait for retries')
  await pause(300)
  t.equal(hook.attempts.length, 1, 'no retry after close')
})
