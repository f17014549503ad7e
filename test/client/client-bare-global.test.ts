import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type WebSocket from 'ws'
import { startBridge, TOKEN } from '../fixtures/bridge.js'

/*
 * React Native's shape: a global WebSocket and nothing of a browser (no
 * window, document, localStorage, addEventListener or navigator). A Node
 * process of its own is made so (Node 20 has no global WebSocket; Node 21+
 * has a navigator, which is removed), gets the `ws` package's class as its
 * global WebSocket, and runs the built SDK as an app would, with no
 * WebSocket option. It reports on its stdout, one JSON line each; the test
 * plays the bridge's side: pushes an event, cuts the socket.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
const sdk = pathToFileURL(`${root}packages/client/dist/index.js`).href

const APP = `
import WebSocket from 'ws'
const { BridgeClient } = await import(process.env.SDK_URL)
const browserOnly = ['window', 'document', 'localStorage', 'addEventListener', 'removeEventListener', 'navigator']
for (const name of browserOnly) delete globalThis[name]
globalThis.WebSocket = WebSocket
const say = (m) => { process.stdout.write(JSON.stringify(m) + '\\n') }
say({ present: browserOnly.filter((name) => name in globalThis) })
const client = new BridgeClient({ url: process.env.BRIDGE_URL, cid: 'rn' })
client.on('welcome', (w) => { say({ welcome: { clientId: w.clientId, resumed: w.resumed } }) })
client.on('event', (e) => { say({ event: e.type, text: e.event.text ?? e.event.query ?? e.event.data?.replies?.[0]?.text ?? null, cursor: e.cursor }) })
client.on('error', (err) => { say({ error: err.message }) })
await client.connect()
const answer = await client.send('hello')
say({ answer: answer.data.replies[0]?.text })
// Closed when the test is done: the process must then end by itself, no timer or listener left to keep it.
process.stdin.on('end', () => { client.close() })
process.stdin.resume()
`

type Line = Record<string, unknown>

t.test('under a bare WebSocket global with no DOM, the SDK connects, chats, gets pushed events and resumes after a cut', async (t) => {
  const h = await startBridge(t)
  const child = spawn(process.execPath, ['--input-type=module', '-e', APP], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', BRIDGE_URL: h.wsUrl, SDK_URL: sdk },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = once(child, 'exit')
  const lines: Line[] = []
  const waiters = new Set<{ pred: (l: Line) => boolean, resolve: (l: Line) => void }>()
  createInterface({ input: child.stdout }).on('line', (text) => {
    const l = JSON.parse(text) as Line
    lines.push(l)
    for (const w of [...waiters]) if (w.pred(l)) { waiters.delete(w); w.resolve(l) }
  })
  const line = async (pred: (l: Line) => boolean): Promise<Line> => {
    const seen = lines.find(pred)
    if (seen !== undefined) return seen
    return await Promise.race([
      new Promise<Line>((resolve) => { waiters.add({ pred, resolve }) }),
      exited.then(([code]) => { throw new Error(`the app exited (${String(code)}): ${stderr}`) })
    ])
  }

  t.same((await line((l) => 'present' in l)).present, [], 'no browser global is left')
  const first = (await line((l) => 'welcome' in l)).welcome as { clientId: string, resumed: boolean }
  t.equal(first.resumed, false)
  t.equal((await line((l) => 'answer' in l)).answer, 'You said: hello')

  h.emulator.agentReply(TOKEN, first.clientId, 'pushed')
  await line((l) => l.text === 'pushed')

  for (const s of h.app.bridge.sessions) (s as unknown as { ws: WebSocket }).ws.terminate()
  h.emulator.agentReply(TOKEN, first.clientId, 'while cut')
  const again = (await line((l) => 'welcome' in l && l !== lines.find((x) => 'welcome' in x))).welcome as { clientId: string, resumed: boolean }
  t.same(again, { clientId: first.clientId, resumed: true }, 'the same visitor, resumed')
  await line((l) => l.text === 'while cut')

  child.stdin.end()
  const [code] = await exited
  t.equal(code, 0, `the app ended by itself after close() ${stderr}`)
  t.same(lines.filter((l) => 'event' in l).map((l) => `${String(l.event)}: ${String(l.text)}`), [
    'clientRequest: hello', 'botResponse: You said: hello', 'agentResponse: pushed', 'agentResponse: while cut'
  ], 'every event once, in order')
  t.same(lines.filter((l) => 'error' in l), [], 'no error')
})
