/**
 * The emulator of the storm scenario: the built emulator (dist/emulator),
 * with the settings of procs.ts startEmulator (h2c and HTTP/1.1 on one port),
 * run inside this process so that every `/events` request it receives is
 * seen (the emulator's `request` event), not only counted by route as
 * `/operator/stats` does. That tells a new upstream poll from a re-poll: a
 * connection key (clientId, cid) that makes its first request since `mark`
 * is a poll started anew, which is what a restarted bridge makes once per
 * resumed connection and what POLL_STARTS_PER_S paces; the re-polls that
 * follow each answered event are not. Driven over IPC by storm.ts.
 */
import { pathToFileURL } from 'node:url'
import { root } from './procs.js'

/** What this file uses of the emulator's public API (src/emulator/index.ts); the bench compiles apart from src. */
interface RequestRecord { route: string, clientId?: string, query: Record<string, string> }
interface Emulator {
  origin: string
  on: (event: 'request', fn: (record: RequestRecord) => void) => unknown
  close: () => Promise<void>
}

const { startEmulator } = await import(pathToFileURL(`${root}dist/emulator/index.js`).href) as {
  startEmulator: (o: object) => Promise<Emulator>
}

const emulator = await startEmulator({
  port: 0,
  host: '127.0.0.1',
  tokens: (process.env.EMULATOR_TOKENS ?? 'bench-token').split(','),
  holdMs: Number(process.env.EMULATOR_HOLD_MS ?? '25000'),
  http2: true,
  logger: { level: process.env.EMULATOR_LOG_LEVEL ?? 'warn' }
})

/** Every /events request since the start, and the keys that have polled since the last mark. */
let polls = 0
let keysSinceMark = new Set<string>()
let markedAt = Date.now()
emulator.on('request', (r) => {
  if (r.route !== 'events') return
  polls++
  keysSinceMark.add(`${r.clientId ?? ''}\n${r.query.cid ?? ''}`)
})

type Command = { cmd: 'mark' } | { cmd: 'sample' }

export interface PollSample {
  /** Date.now() of this process. */
  at: number
  /** /events requests received since the emulator started. */
  polls: number
  /** Connection keys with at least one /events request since the last mark: polls started anew, when the mark is put where no poll runs. */
  newKeys: number
  markedAt: number
}

function handle (c: Command): PollSample {
  if (c.cmd === 'mark') {
    keysSinceMark = new Set()
    markedAt = Date.now()
  }
  return { at: Date.now(), polls, newKeys: keysSinceMark.size, markedAt }
}

process.on('message', (msg: { id: number, command: Command }) => {
  try {
    process.send?.({ id: msg.id, result: handle(msg.command) })
  } catch (err) {
    process.send?.({ id: msg.id, error: err instanceof Error ? err.stack ?? err.message : String(err) })
  }
})
process.on('disconnect', () => { void emulator.close().then(() => process.exit(0)) })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { void emulator.close().then(() => process.exit(0)) })
}
process.send?.({ ready: true, origin: emulator.origin })
