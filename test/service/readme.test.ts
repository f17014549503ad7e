import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { BridgeClient, type BridgeEvent, type WebSocketConstructor } from '../../packages/client/src/index.js'
import { startDemo, browserSkip, launchBrowser, pageErrors } from '../fixtures/browser.js'
import { freePort, run, runShell, tempDir } from '../fixtures/processes.js'
import { TOKEN } from '../fixtures/bridge.js'
import { next } from '../fixtures/sdk-events.js'

/**
 * The README's snippets, run as a newcomer would run them: taken from the
 * README itself, with only its addresses pointed at servers of the test's
 * own. A README that shows something that does not work fails here.
 */
t.setTimeout(120_000)

const root = fileURLToPath(new URL('../../', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

interface Block { lang: string, code: string }
// A fence may be indented (a block inside a list item); its lines carry the same indent.
const blocks: Block[] = [...readme.matchAll(/^( *)```(\w*)[^\n]*\n([\s\S]*?)^ *```$/gm)].map((m) => {
  const indent = m[1] ?? ''
  return { lang: m[2] ?? '', code: (m[3] ?? '').split('\n').map((l) => l.startsWith(indent) ? l.slice(indent.length) : l).join('\n') }
})

/** The one block of `lang` that holds `marker`. */
function block (lang: string, marker: string): string {
  const found = blocks.filter((b) => b.lang === lang && b.code.includes(marker))
  if (found.length !== 1) throw new Error(`README: expected one ${lang} block with ${marker}, found ${found.length}`)
  return found[0]!.code
}

/** The README speaks of the default addresses and the emulator's default token; the test's servers have their own. */
function pointed (code: string, ports: { bridge: number, emulator: number, token?: string }): string {
  const moved = code.replaceAll('127.0.0.1:3000', `127.0.0.1:${ports.bridge}`).replaceAll('127.0.0.1:3001', `127.0.0.1:${ports.emulator}`)
  return ports.token === undefined ? moved : moved.replaceAll('/demo-token/', `/${ports.token}/`)
}

function portOf (url: string): number {
  return Number(new URL(url).port)
}

function sdkClient (t: Test, url: string): BridgeClient {
  const client = new BridgeClient({ url, WebSocket: WebSocket as unknown as WebSocketConstructor })
  t.teardown(() => { client.close() })
  return client
}

t.test('npm start ends with the block the README shows', { skip: existsSync('/usr/bin/script') ? false : 'no script(1) to give the bridge a terminal' }, async (t) => {
  const shown = block('', 'chatapi-bridge is ready').trim().split('\n')
  const ports = { bridge: await freePort(), emulator: await freePort() }
  // The block goes to a terminal only: script(1) gives the bridge one.
  const p = runShell(t, `script -qec '${process.execPath} ${join(root, 'dist/server.js')}' /dev/null`, { PORT: String(ports.bridge), EMULATOR_PORT: String(ports.emulator), NO_COLOR: '1' }, tempDir(t))
  const chatLine = await p.line((l) => l.msg?.includes('terminal chat') === true)
  const printed = p.lines.map((l) => (l.msg ?? '').trimEnd())
  const start = printed.lastIndexOf('chatapi-bridge is ready')
  t.ok(start >= 0, 'the heading')
  const rows = printed.slice(start, printed.indexOf((chatLine.msg ?? '').trimEnd()) + 1)
  // On ports other than the defaults the chat needs BRIDGE_URL: the one row that differs by more than a port.
  const expected = shown.map((l) => pointed(l, ports))
  t.same(rows.slice(0, -1), expected.slice(0, -1))
  t.match(rows.at(-1), /^ {2}terminal chat {3}BRIDGE_URL=ws:\/\/127\.0\.0\.1:\d+\/v1\/ws npm run chat$/)
  t.equal(expected.at(-1), '  terminal chat   npm run chat')
})

t.test('the Node snippet chats with a bridge', async (t) => {
  const h = await startDemo(t)
  const code = pointed(block('js', "from '@chatapi-bridge/client'"), { bridge: portOf(h.httpUrl), emulator: 0 })
  // Inside the repository, so that the package and ws resolve as in a project that installed them.
  mkdirSync(join(root, 'test-output'), { recursive: true })
  const dir = mkdtempSync(join(root, 'test-output', 'readme-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'snippet.mjs'), code)
  const p = run(t, join(dir, 'snippet.mjs'), {}, dir)
  t.equal(await p.exited, 0, p.stderr())
  t.match(p.lines.map((l) => l.msg).join('\n'), /^bot: \S/m, 'it printed the bot\'s answer')
})

t.test('the page snippet chats with a bridge from a page of another origin', { skip: browserSkip() }, async (t) => {
  const h = await startDemo(t)
  const html = pointed(block('html', 'sdk/index.js'), { bridge: portOf(h.httpUrl), emulator: 0 })
  const site: Server = createServer((_req, res) => { res.setHeader('content-type', 'text/html'); res.end(html) })
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { site.close() })
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const errors = pageErrors(page)
  await page.goto(`http://127.0.0.1:${(site.address() as { port: number }).port}/`)
  await page.waitForFunction(() => document.body.textContent?.trim() !== '', undefined, { timeout: 10_000 })
  t.match(await page.textContent('body'), /\S/, 'the answer is on the page')
  t.same(errors, [])
})

t.test('the agent curl reaches every socket of the client; left as CLIENT-ID it says there is no such client', async (t) => {
  const h = await startDemo(t)
  const curl = block('sh', 'agent-reply')
  const ports = { bridge: portOf(h.httpUrl), emulator: portOf(h.emulator.origin), token: TOKEN }
  const placeholder = runShell(t, pointed(curl, ports), {}, root)
  await placeholder.exited
  t.match(placeholder.lines.map((l) => JSON.stringify(l)).join('\n'), /no client \\"CLIENT-ID\\"/)

  const client = sdkClient(t, h.wsUrl)
  const { clientId } = await client.connect()
  await client.send('hello')
  const reply = next(client, 'event', (e: BridgeEvent) => e.type === 'agentResponse')
  const real = runShell(t, pointed(curl, ports).replace('CLIENT-ID', clientId), {}, root)
  t.equal(await real.exited, 0)
  t.match((await reply).event, { text: 'Hi, this is Anna' })
})

t.test('the emulator on its own, wired as the README says, delivers its webhook to the bridge', async (t) => {
  const lines = block('sh', 'npm run emulator').trim().split('\n')
  t.equal(lines.length, 2, 'an emulator line and a bridge line')
  const ports = { bridge: await freePort(), emulator: await freePort() }
  // npm's pre-scripts only build, which the suite has done: run what they run after it.
  const command = (line: string): string => pointed(line, ports)
    .replace('npm run emulator', `node ${join(root, 'dist/emulator/main.js')}`)
    .replace('npm start', `node ${join(root, 'dist/server.js')}`)
  const emulator = runShell(t, command(lines[0]!), { EMULATOR_PORT: String(ports.emulator) }, tempDir(t))
  // Its start line names its address.
  await emulator.line((l) => JSON.stringify(l).includes(`:${ports.emulator}`))
  const bridge = runShell(t, command(lines[1]!), { PORT: String(ports.bridge) }, tempDir(t))
  await bridge.line((l) => l.msg?.startsWith('chatapi-bridge ready') === true)

  const client = sdkClient(t, `ws://127.0.0.1:${ports.bridge}/v1/ws`)
  await client.connect()
  const delivered = next(client, 'event', (e: BridgeEvent) => e.type === 'webhook')
  const { questionId } = await client.sendAsync('hello')
  t.match((await delivered).event, { questionId }, 'the async answer came by the webhook')
})
