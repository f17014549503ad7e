import { createReadStream, createWriteStream } from 'node:fs'
import { rename, unlink } from 'node:fs/promises'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { StreamPosition } from './cursor.js'
import type { FeedKey } from './hub.js'
import type { Log } from '../lib/log.js'

/*
 * A graceful stop hands the feeds' recent events and positions to the next
 * process through a file (HANDOFF_FILE), so that after a restart a socket
 * resuming from its cursor is welcomed from memory at once, instead of
 * waiting in the poll gate for its first upstream answer. Its poll then
 * starts behind the gate, from the last event handed over.
 *
 * The file is JSON lines: a header, then one feed a line. It holds
 * conversations, so it is written for the owner alone (0600), renamed into
 * place whole, read once and deleted at once.
 */

const Position = Type.Object({
  poll: Type.Optional(Type.Object({ ts: Type.Number(), hash: Type.String({ maxLength: 64 }) })),
  webhook: Type.Number()
})

const HandedFeedSchema = Type.Object({
  key: Type.Object({ channel: Type.String(), clientId: Type.String(), cid: Type.String(), all: Type.Boolean() }),
  events: Type.Array(Type.Object({ ts: Type.Number(), pos: Position, before: Position, json: Type.String() }), { minItems: 1 })
})

/** One feed as a process hands it over: its key and the events it kept, oldest first. */
export type HandedFeed = Static<typeof HandedFeedSchema> & { key: FeedKey }
export type HandedEvent = HandedFeed['events'][number]

/** A position as read back: JSON has no `undefined`, so a position before any event comes without `poll`. */
export function positionOf (p: Static<typeof Position>): StreamPosition {
  return { poll: p.poll, webhook: p.webhook }
}

const Header = Type.Object({ handoff: Type.Literal(1), savedAt: Type.Number(), feeds: Type.Integer({ minimum: 0 }) })

/** Writes the feeds to `file` (through a temporary file beside it, renamed into place). */
export async function saveHandoff (file: string, feeds: HandedFeed[], now = Date.now()): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  const out = createWriteStream(tmp, { mode: 0o600 })
  const write = async (line: string): Promise<void> => {
    if (!out.write(line + '\n')) await once(out, 'drain')
  }
  try {
    await write(JSON.stringify({ handoff: 1, savedAt: now, feeds: feeds.length }))
    for (const f of feeds) await write(JSON.stringify(f))
    out.end()
    await once(out, 'finish')
    await rename(tmp, file)
  } catch (err) {
    out.destroy()
    await unlink(tmp).catch(() => {})
    throw err
  }
}

/**
 * The feeds a previous process handed over in `file`, and the file is gone.
 * Nothing when there is no file, or when it is older than `maxAgeMs` (its
 * feeds would have ended by now). Lines that are not a feed are skipped and
 * counted in one log line; a file that is not a handoff at all is logged and
 * ignored.
 */
export async function loadHandoff (file: string, maxAgeMs: number, log: Log, now = Date.now()): Promise<HandedFeed[]> {
  const input = createReadStream(file, { encoding: 'utf8' })
  try {
    await once(input, 'open')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'the handoff file cannot be read; every feed starts cold')
    return []
  }
  // Read once only: a later start must not take the same feeds again.
  await unlink(file).catch(() => {})
  const feeds: HandedFeed[] = []
  let header: Static<typeof Header> | undefined
  let bad = 0
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    const value = parse(line)
    if (header === undefined) {
      if (!Value.Check(Header, value)) {
        log.warn({ file }, 'the handoff file does not begin with a handoff header; ignored')
        input.destroy()
        return []
      }
      header = value
      if (now - header.savedAt > maxAgeMs) {
        log.info({ file, ageMs: now - header.savedAt }, 'the handoff file is older than POLL_LINGER_MS; ignored')
        input.destroy()
        return []
      }
      continue
    }
    if (Value.Check(HandedFeedSchema, value)) feeds.push(value)
    else bad++
  }
  if (bad > 0) log.warn({ file, bad }, 'lines of the handoff file that are not a feed were skipped')
  return feeds
}

function parse (line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}
