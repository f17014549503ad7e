/**
 * A map whose entries expire after a fixed time and whose size is capped.
 * Every entry lives equally long, so insertion order is expiry order and the
 * sweep only ever looks at the oldest entries.
 */
export class TtlCache<V> {
  private readonly map = new Map<string, { expires: number, value: V }>()
  private readonly ttlMs: number
  private readonly max: number
  private readonly now: () => number

  constructor (ttlMs: number, max: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs
    this.max = max
    this.now = now
  }

  get size (): number { return this.map.size }

  get (key: string): V | undefined {
    const hit = this.map.get(key)
    if (hit === undefined) return undefined
    if (hit.expires <= this.now()) {
      this.map.delete(key)
      return undefined
    }
    return hit.value
  }

  set (key: string, value: V): void {
    this.map.delete(key)
    this.map.set(key, { expires: this.now() + this.ttlMs, value })
    this.sweep()
  }

  delete (key: string): void { this.map.delete(key) }

  private sweep (): void {
    const now = this.now()
    for (const [key, entry] of this.map) {
      if (entry.expires > now && this.map.size <= this.max) break
      this.map.delete(key)
    }
  }
}
