import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { BridgeClient, MemoryStorage, parseTimestamp, type BridgeClientOptions, type ChatMessage } from '../../packages/client/src/index.js'
import { startBridge, TOKEN, until } from '../fixtures/bridge.js'
import { browserSkip, keys, launchBrowser, pageErrors } from '../fixtures/browser.js'

/** A client of a bridge at `wsUrl`, closed with the test. */
async function connect (t: Test, wsUrl: string, opts: Partial<BridgeClientOptions> = {}): Promise<BridgeClient> {
  const client = new BridgeClient({ url: wsUrl, WebSocket, storage: new MemoryStorage(), ...opts })
  t.teardown(() => { client.close() })
  await client.connect()
  return client
}

/** Who said what, the way a chat shows it. */
function lines (chat: ChatMessage[]): string[] {
  return chat.map((m) => `${m.author}: ${m.text ?? `(${m.event?.name ?? '?'})`}`)
}

t.test('history() over real sockets: the emulator\'s pairs as one conversation, oldest first', async (t) => {
  const h = await startBridge(t)
  const client = await connect(t, h.wsUrl, { cid: 'tab-1' })
  const hello = await client.send('hello')
  const greet = await client.send({ event: 'greet', data: { from: 'test' } })
  const buttons = await client.send('buttons')
  h.emulator.agentReply(TOKEN, client.clientId ?? '', 'Hi, this is Alex.')

  const history = await client.history({ limit: 10 })
  t.same(lines(history.chat), [
    'client: hello', `bot: ${hello.data.answer ?? ''}`,
    'client: (greet)', 'bot: Got the event "greet".',
    'client: buttons', 'bot: Pick one:',
    'agent: Hi, this is Alex.'
  ])
  t.same(history.chat.slice(0, 6).map((m) => m.id), [hello, hello, greet, greet, buttons, buttons].map((a) => a.questionId), 'a message and its answer share the questionId')
  t.type(history.chat[6]?.id, 'string', 'the agent\'s reply has one of its own')
  t.same(history.chat[2]?.event, { name: 'greet', data: { from: 'test' } })
  t.same(history.chat[5]?.replies, buttons.data.replies, 'the bot\'s replies as the send answered them, buttons too')
  t.equal(history.chat[0]?.at, parseTimestamp(hello.timestamp), 'times are the upstream\'s')
  t.ok(history.chat.every((m, i, all) => i === 0 || (m.at ?? 0) >= (all[i - 1]?.at ?? 0)), 'oldest first')

  t.equal(history.messages.length, 4, 'messages: the body\'s list as it came, for callers of the raw shape')
  t.equal(history.messages[0]?.questionId, hello.questionId)
  t.same(history.body, { messages: history.messages }, 'body: the upstream answer')
  t.notOk(JSON.stringify(history).includes(TOKEN), 'no token')

  const limited = await client.history({ limit: 1 })
  t.same(lines(limited.chat), ['agent: Hi, this is Alex.'], 'the options still reach the upstream')
})

/**
 * A Chat API that answers the history as the platform's sibling history API
 * does, one entry per message, newest first, so that the SDK is seen to
 * read that shape through a real bridge. Its /events polls are held until
 * it closes: nothing else happens upstream.
 */
async function entryHistoryUpstream (t: Test): Promise<{ url: string, historyQueries: string[] }> {
  const held = new Set<ServerResponse>()
  const historyQueries: string[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream')
    const json = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)) }
    if (url.pathname === `/chatapi/${TOKEN}/events`) {
      held.add(res)
      res.on('close', () => { held.delete(res) })
    } else if (/^\/chatapi\/[^/]+\/client\/[^/]+\/history$/.test(url.pathname)) {
      historyQueries.push(url.search)
      // Asked for two, it answers in the shape of /events, another shape a server may use.
      if (url.searchParams.get('limit') === '2') {
        json(200, {
          events: [
            { type: 'clientRequest', event: { questionId: 'e1', query: 'hi', timestamp: '2026-03-01T10:00:00.000' } },
            { type: 'stateUpdate', event: { state: {}, timestamp: '2026-03-01T10:00:00.500' } },
            { type: 'botResponse', event: { questionId: 'e1', data: { replies: [{ type: 'text', text: 'Hello!' }] }, timestamp: '2026-03-01T10:00:00.000' } }
          ]
        })
        return
      }
      json(200, {
        token: TOKEN,
        totalCount: 5,
        messages: [
          { questionId: 'p4', textMessage: 'The agent closed the chat.', author: 'SYSTEM', status: null, eventData: null, replies: null, timestamp: '2026-03-01T10:03:00.000Z' },
          { questionId: 'p3', textMessage: 'Hello, I am Alex.', author: 'OPERATOR', status: 'SENT', eventData: null, replies: null, timestamp: '2026-03-01T10:02:00Z' },
          { questionId: 'p2', textMessage: null, author: 'BOT', status: 'READ', eventData: null, replies: [{ type: 'text', text: 'Pick one:' }, { type: 'buttons', buttons: [{ text: 'Yes' }] }], timestamp: '2026-03-01T10:01:00' },
          { questionId: 'p2', textMessage: 'buttons', author: 'CLIENT', status: null, eventData: null, replies: null, timestamp: '2026-03-01T10:01:00' },
          { questionId: 'p1', textMessage: 'hello', author: 'CLIENT', status: null, eventData: null, replies: null, timestamp: 1772359200000 }
        ]
      })
    } else {
      json(404, { error: 'not.found', message: 'no such path here' })
    }
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    for (const res of held) res.writeHead(200, { 'content-type': 'application/json' }).end('{"events":[]}')
    server.closeAllConnections()
    await new Promise((resolve) => { server.close(resolve) })
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/chatapi`, historyQueries }
}

/** A bridge in front of `upstreamUrl`, on port 0, closed with the test. */
async function bridgeOn (t: Test, upstreamUrl: string, demoPage = false): Promise<{ httpUrl: string, wsUrl: string }> {
  const config = loadConfig({ TICKET_SECRET: 'test-ticket-secret-0123456789', LOG_LEVEL: 'silent', PORT: '0' })
  const app = await buildApp(config, { channels: [{ name: 'default', url: upstreamUrl, token: TOKEN }], demoPage, logger: false })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const host = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return { httpUrl: `http://${host}`, wsUrl: `ws://${host}/v1/ws` }
}

t.test('history() over real sockets: the platform\'s entries, newest first, as the same kind of conversation', async (t) => {
  const upstream = await entryHistoryUpstream(t)
  const client = await connect(t, (await bridgeOn(t, upstream.url)).wsUrl)

  const history = await client.history({ from: 0, limit: 50 })
  t.same(lines(history.chat), ['client: hello', 'client: buttons', 'bot: Pick one:', 'agent: Hello, I am Alex.', 'system: The agent closed the chat.'])
  t.same(history.chat.map((m) => m.at), [1772359200000, ...[1, 1, 2, 3].map((min) => Date.UTC(2026, 2, 1, 10, min))])
  t.same(history.chat[2]?.replies, [{ type: 'text', text: 'Pick one:' }, { type: 'buttons', buttons: [{ text: 'Yes' }] }])
  t.same(history.chat.map((m) => m.status), [undefined, undefined, 'READ', 'SENT', undefined])
  t.equal((history.body as { totalCount?: number }).totalCount, 5, 'the body as it came, token aside')
  t.notOk(JSON.stringify(history.body).includes(TOKEN))
  const events = await client.history({ limit: 2 })
  t.same(lines(events.chat), ['client: hi', 'bot: Hello!'], 'a history in the shape of /events')
  t.same(events.messages, [], 'a body with no messages list: none')
  t.same(upstream.historyQueries, ['?from=0&limit=50', '?limit=2'])
})

t.test('the demo page renders the platform\'s entries: the visitor\'s lines, the bot\'s buttons, the agent, a notice', { skip: browserSkip() }, async (t) => {
  const upstream = await entryHistoryUpstream(t)
  const { httpUrl } = await bridgeOn(t, upstream.url, true)
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const errors = pageErrors(page)
  await page.goto(`${httpUrl}/`)
  await page.waitForFunction(() => document.querySelectorAll('#log .msg[data-key]').length === 5)
  t.same(await keys(page), ['q:p1', 'q:p2', 'a:p2', 'a:p3', 's:p4'], 'in time order, each once')
  t.same(await page.$$eval('#log .msg', (els) => els.map((el) => el.className)), ['msg me', 'msg me', 'msg bot', 'msg agent', 'msg system'])
  t.same(await page.$$eval('#log .msg.me .text', (els) => els.map((el) => el.textContent)), ['hello', 'buttons'])
  t.equal(await page.textContent('.msg.bot .choices button'), 'Yes', 'the bot\'s buttons, as a send\'s answer shows them')
  t.equal(await page.textContent('.msg.agent .text'), 'Hello, I am Alex.', 'a text with no replies shows as a text')
  t.equal(await page.textContent('.msg.system .notice'), 'The agent closed the chat.')
  t.same(errors, [], 'no error in the page')
})

t.test('the terminal chat\'s /history prints the conversation, one line per message', async (t) => {
  const h = await startBridge(t)
  const chatJs = fileURLToPath(new URL('../../dist/cli/chat.js', import.meta.url))
  // The built terminal chat, as `npm run chat` runs it.
  const chat = spawn(process.execPath, [chatJs], { env: { PATH: process.env.PATH, BRIDGE_URL: h.wsUrl }, stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => { chat.kill('SIGKILL') })
  let out = ''
  chat.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const saw = async (re: RegExp): Promise<void> => { await until(() => re.test(out), 20_000, `${String(re)} in ${out}`) }
  await saw(/connected as (\S+)/)
  const clientId = /connected as (\S+)/.exec(out)?.[1] ?? ''
  chat.stdin.write('/history\n')
  await saw(/\(no messages yet\)/)
  chat.stdin.write('buttons\n')
  await saw(/bot: \[Yes\] \[No\]/)
  h.emulator.agentReply(TOKEN, clientId, 'Hi, this is Alex.')
  await saw(/agent: Hi, this is Alex\./)
  const from = out.length
  chat.stdin.write('/history\n')
  await until(() => out.slice(from).includes('agent: Hi'), 20_000, 'the history lines')
  t.same(out.slice(from).split('\n').filter((l) => /^(?:> )*(?:you|bot|agent|system):/.test(l)).map((l) => l.replace(/^(?:> )+/, '')), [
    'you: buttons',
    'bot: Pick one:  [Yes] [No]',
    'agent: Hi, this is Alex.'
  ])
  const exited = new Promise<number | null>((resolve) => chat.once('exit', resolve))
  chat.stdin.write('/quit\n')
  t.equal(await exited, 0)
})
