/**
 * The limits of a ByteCache: how long an entry is kept, how many are kept,
 * and how many bytes in all and for one group (one client).
 */
export interface ByteBounds {
  ttlMs: number
  maxEntries: number
  maxBytes: number
  groupBytes: number
}

/** The largest entry the bounds keep: one that fills a group's whole share, or the whole cache if that is smaller. */
export function largestEntry (b: Pick<ByteBounds, 'maxBytes' | 'groupBytes'>): number {
  return Math.min(b.maxBytes, b.groupBytes)
}

interface Kept<V> { value: V, group: string, bytes: number, expires: number }
interface Held<V> { value: V, group: string }
interface Group { bytes: number, keys: Set<string> }

export interface ByteCacheStats {
  /** Entries kept (settled), not counting those still held. */
  entries: number
  /** Entries held while their value is worked out: no size yet, never evicted. */
  held: number
  bytes: number
  groups: number
}

/**
 * A cache bounded in time, entries and bytes, whose entries belong to
 * groups. An entry is first held (its value pending, size unknown), then
 * kept with its size. Room for a kept entry is made from its own group's
 * oldest first, so one group filling its share never evicts another's;
 * only when the whole cache is full do the oldest of all go. An entry
 * lives `ttlMs` from when it was kept, so the order of keeping is the
 * order of expiry and sweeps only look at the oldest.
 */
export class ByteCache<V> {
  private readonly b: ByteBounds
  private readonly now: () => number
  private readonly held = new Map<string, Held<V>>()
  private readonly kept = new Map<string, Kept<V>>()
  private readonly groups = new Map<string, Group>()
  private bytes = 0

  constructor (bounds: ByteBounds, now: () => number = Date.now) {
    this.b = bounds
    this.now = now
  }

  get (key: string): V | undefined {
    const held = this.held.get(key)
    if (held !== undefined) return held.value
    const hit = this.kept.get(key)
    if (hit === undefined) return undefined
    if (hit.expires <= this.now()) {
      this.remove(key)
      return undefined
    }
    return hit.value
  }

  /** Holds an entry whose size is not known yet; it counts against no bytes until settled. */
  hold (key: string, group: string, value: V): void {
    this.remove(key)
    this.held.set(key, { value, group })
    this.sweep()
  }

  /**
   * Settles a held entry: kept as `value` with its size, or dropped when
   * `bytes` is undefined or more than any group may keep. Only the holder's
   * own entry is settled (`held` is the value it held). True when kept.
   */
  settle (key: string, held: V, bytes: number | undefined, value: V = held): boolean {
    const entry = this.held.get(key)
    if (entry === undefined || entry.value !== held) return false
    this.held.delete(key)
    if (bytes === undefined || bytes > largestEntry(this.b)) return false
    const group = this.groupOf(entry.group)
    this.kept.set(key, { value, group: entry.group, bytes, expires: this.now() + this.b.ttlMs })
    group.keys.add(key)
    group.bytes += bytes
    this.bytes += bytes
    this.makeRoom(key, group)
    this.sweep()
    return true
  }

  delete (key: string): void { this.remove(key) }

  /** Bytes kept for one group. */
  groupBytes (group: string): number { return this.groups.get(group)?.bytes ?? 0 }

  stats (): ByteCacheStats {
    return { entries: this.kept.size, held: this.held.size, bytes: this.bytes, groups: this.groups.size }
  }

  /** The group's own oldest go until it is within its share; then the oldest of all until the cache is. */
  private makeRoom (newest: string, group: Group): void {
    while (group.bytes > this.b.groupBytes) {
      if (!this.evictFirst(group.keys, newest)) break
    }
    while (this.bytes > this.b.maxBytes) {
      if (!this.evictFirst(this.kept.keys(), newest)) break
    }
  }

  /** Removes the first key of `keys` other than `newest`; false when there is none. */
  private evictFirst (keys: Iterable<string>, newest: string): boolean {
    for (const key of keys) {
      if (key === newest) continue
      this.remove(key)
      return true
    }
    return false
  }

  private sweep (): void {
    const now = this.now()
    for (const [key, entry] of this.kept) {
      if (entry.expires > now && this.kept.size + this.held.size <= this.b.maxEntries) break
      this.remove(key)
    }
  }

  private remove (key: string): void {
    this.held.delete(key)
    const entry = this.kept.get(key)
    if (entry === undefined) return
    this.kept.delete(key)
    this.bytes -= entry.bytes
    const group = this.groups.get(entry.group)
    if (group === undefined) return
    group.keys.delete(key)
    group.bytes -= entry.bytes
    if (group.keys.size === 0) this.groups.delete(entry.group)
  }

  private groupOf (name: string): Group {
    let group = this.groups.get(name)
    if (group === undefined) {
      group = { bytes: 0, keys: new Set() }
      this.groups.set(name, group)
    }
    return group
  }
}
