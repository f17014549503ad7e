/** One event's bytes, held once for every feed of a client that keeps it. */
export interface SharedText {
  readonly json: string
  /** Order of arrival among the client's texts: the oldest go first when memory is short. */
  readonly n: number
  refs: number
}

/** What a feed shows of itself here: its kept frames, oldest first, and a way to drop the oldest. */
export interface TextKeeper {
  readonly recent: ReadonlyArray<{ readonly text: SharedText }>
  dropOldest: () => void
}

/**
 * The feeds of one client (one per `cid`) and the events they keep for
 * resumes and slow sockets. Every connection of a client gets the same
 * events, so each event's text is held once, however many feeds keep it,
 * and the bytes of all of them are bounded together: when they pass the
 * bound, the oldest events go, from whichever feed holds them.
 */
export class ClientFeeds<F extends TextKeeper = TextKeeper> {
  readonly feeds = new Set<F>()
  private readonly texts = new Map<string, SharedText>()
  private counter = 0
  /** Bytes of the texts held. */
  bytes = 0

  /** The shared copy of a text known by `key` (an event's hash, or a mail position). */
  hold (key: string, json: string): SharedText {
    let t = this.texts.get(key)
    if (t === undefined) {
      t = { json, n: this.counter++, refs: 0 }
      this.texts.set(key, t)
      this.bytes += json.length
    }
    t.refs++
    return t
  }

  /** A feed let go of a text. */
  release (key: string): void {
    const t = this.texts.get(key)
    if (t === undefined || --t.refs > 0) return
    this.texts.delete(key)
    this.bytes -= t.json.length
  }

  /** Drops the oldest frames of the client's feeds until their texts fit in `maxBytes`. */
  trim (maxBytes: number): void {
    while (this.bytes > maxBytes) {
      let oldest: F | undefined
      let first: { readonly text: SharedText } | undefined
      for (const f of this.feeds) {
        const e = f.recent[0]
        if (e !== undefined && (first === undefined || e.text.n < first.text.n)) {
          first = e
          oldest = f
        }
      }
      if (oldest === undefined) return
      oldest.dropOldest()
    }
  }
}
