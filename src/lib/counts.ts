/** How many of something each key holds (sockets of a client, of an address); a key at zero is forgotten. */
export class Counts {
  private readonly map = new Map<string, number>()

  /** Counts one more for `key`; false, counting nothing, when it holds `max` already. */
  claim (key: string, max: number): boolean {
    const n = this.map.get(key) ?? 0
    if (n >= max) return false
    this.map.set(key, n + 1)
    return true
  }

  /** How many `key` holds now. */
  get (key: string): number { return this.map.get(key) ?? 0 }

  release (key: string): void {
    const n = (this.map.get(key) ?? 1) - 1
    if (n <= 0) this.map.delete(key)
    else this.map.set(key, n)
  }
}
