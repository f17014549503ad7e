/** A held /events request, as the index sees it. */
export interface HeldPoll {
  readonly cid: string | undefined
  /** Answers if something matches now; called after each append to its client. */
  wake(): void
  /** Answers with what it has (nothing), because the emulator closes. */
  end(): void
}

/**
 * Held polls indexed by (token, clientId), so that an append wakes only that
 * client's polls and never scans the others. Also counts polls per cid and
 * keeps the peak of each count for the tests.
 */
export class HeldPolls {
  readonly #byClient = new Map<string, Set<HeldPoll>>()
  readonly #counts = new Map<string, number>()
  readonly #peaks = new Map<string, number>()
  #total = 0

  get total (): number {
    return this.#total
  }

  add (token: string, clientId: string, poll: HeldPoll): void {
    const k = clientKey(token, clientId)
    let polls = this.#byClient.get(k)
    if (polls === undefined) {
      polls = new Set()
      this.#byClient.set(k, polls)
    }
    polls.add(poll)
    this.#total++
    this.#count(countKey(k, poll.cid ?? ''), 1)
    this.#count(countKey(k, undefined), 1)
  }

  delete (token: string, clientId: string, poll: HeldPoll): void {
    const k = clientKey(token, clientId)
    const polls = this.#byClient.get(k)
    if (polls === undefined || !polls.delete(poll)) return
    if (polls.size === 0) this.#byClient.delete(k)
    this.#total--
    this.#count(countKey(k, poll.cid ?? ''), -1)
    this.#count(countKey(k, undefined), -1)
  }

  wake (token: string, clientId: string): void {
    const polls = this.#byClient.get(clientKey(token, clientId))
    if (polls === undefined) return
    // A copy, because an answered poll leaves the set while we walk it.
    for (const poll of [...polls]) poll.wake()
  }

  active (token: string, clientId: string, cid?: string): number {
    return this.#counts.get(countKey(clientKey(token, clientId), cid)) ?? 0
  }

  peak (token: string, clientId: string, cid?: string): number {
    return this.#peaks.get(countKey(clientKey(token, clientId), cid)) ?? 0
  }

  endAll (): void {
    for (const polls of [...this.#byClient.values()]) {
      for (const poll of [...polls]) poll.end()
    }
  }

  #count (k: string, delta: number): void {
    const n = (this.#counts.get(k) ?? 0) + delta
    if (n === 0) this.#counts.delete(k)
    else this.#counts.set(k, n)
    if (n > (this.#peaks.get(k) ?? 0)) this.#peaks.set(k, n)
  }
}

function clientKey (token: string, clientId: string): string {
  return `${token}\u0000${clientId}`
}

/** cid undefined means "every cid"; a poll without a cid counts under ''. */
function countKey (client: string, cid: string | undefined): string {
  return cid === undefined ? `${client}\u0000*` : `${client}\u0001${cid}`
}
