import type { RequestRecord } from './types.js'

const LIMIT = 10_000

/** Every request received, the last 10,000 of them, with a count per route that is never trimmed. */
export class RequestLog {
  readonly records: RequestRecord[] = []
  readonly counts: Record<string, number> = {}
  readonly #onRecord: (record: RequestRecord) => void

  constructor (onRecord: (record: RequestRecord) => void) {
    this.#onRecord = onRecord
  }

  add (record: RequestRecord): void {
    this.records.push(record)
    if (this.records.length > LIMIT) this.records.shift()
    this.counts[record.route] = (this.counts[record.route] ?? 0) + 1
    this.#onRecord(record)
  }
}
