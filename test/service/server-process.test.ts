import t from 'tap'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { welcomedClient } from '../fixtures/ws-client.js'

const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))
const chatJs = fileURLToPath(new URL('../../dist/cli/chat.js', import.meta.url))

t.test('the built server starts the emulator by itself, chats, and drains on SIGTERM', async (t) => {
  const child = spawn(process.execPath, [serverJs], {
    env: { PATH: process.env.PATH, PORT: '0', EMULATOR_PORT: '0', LOG_LEVEL: 'info', DRAIN_MS: '300' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const lines: string[] = []
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout })
    rl.on('line', (line) => {
      lines.push(line)
      const rec = JSON.parse(line) as { port?: number, msg?: string }
      if (rec.msg?.startsWith('chatapi-bridge ready') === true && rec.port !== undefined) resolve(rec.port)
    })
    child.once('exit', (code) => { reject(new Error(`server exited ${String(code)}: ${lines.join('\n')}`)) })
  })
  t.ok(lines.some((l) => l.includes('built-in Chat API emulator')), 'says it uses the emulator')
  t.ok(lines.some((l) => l.includes('TICKET_SECRET is not set')), 'warns about the random secret')

  const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
  t.equal(ready.status, 200)
  const c = await welcomedClient(t, `ws://127.0.0.1:${port}/v1/ws`)
  const r = await c.request({ type: 'send', id: '1', query: 'buttons' })
  t.equal(r.ok, true)
  const replies = (r.result as { data: { replies: Array<{ type: string }> } }).data.replies
  t.ok(replies.some((x) => x.type === 'buttons'), 'the demo bot answers with buttons')
  t.notOk(JSON.stringify(r).includes('demo-token'), 'no token in the result')

  // The built-in emulator delivers async answers to the bridge's webhook by itself.
  const asy = await c.request({ type: 'sendAsync', id: '2', query: 'later please' })
  const questionId = (asy.result as { questionId: string }).questionId
  const answer = await c.next((f) => f.type === 'event' && (f.event as { type: string }).type === 'webhook' && JSON.stringify(f).includes(questionId))
  t.ok(answer, 'the async answer arrives as a webhook event')

  // The terminal chat of the walk-through.
  const chat = spawn(process.execPath, [chatJs], { env: { PATH: process.env.PATH, BRIDGE_URL: `ws://127.0.0.1:${port}/v1/ws` }, stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => { chat.kill('SIGKILL') })
  let out = ''
  const saw = async (re: RegExp): Promise<void> => {
    await new Promise<void>((resolve) => {
      const check = (): void => { if (re.test(out)) { chat.stdout.off('data', onData); resolve() } }
      const onData = (d: Buffer): void => { out += d.toString(); check() }
      chat.stdout.on('data', onData)
      check()
    })
  }
  chat.stdin.write('buttons\n') // typed before the socket is open: it waits, it does not crash
  await saw(/connected as/)
  await saw(/\[Yes\] \[No\]/)
  const chatExit = new Promise<number | null>((resolve) => chat.once('exit', resolve))
  chat.stdin.write('/quit\n')
  t.equal(await chatExit, 0, 'the chat quits cleanly')

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  child.kill('SIGTERM')
  t.equal(await c.closed(), 1012, 'sockets are told to reconnect')
  t.equal(await exited, 0, 'exits 0')
})

t.test('a wrong setting stops the start with a message naming it', async (t) => {
  const child = spawn(process.execPath, [serverJs], { env: { PATH: process.env.PATH, PORT: 'abc' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.not(code, 0)
  t.match(err, /PORT="abc"/)
})
