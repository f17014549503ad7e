/**
 * Timers owned by one emulator: async answers, the simulated agent, bot
 * timeouts, webhook retries. They are unref'd so that they never keep a
 * process alive on their own, and close() clears them all at once.
 */
export class TimerSet {
  readonly #timers = new Set<NodeJS.Timeout>()
  #closed = false

  /** Runs `fn` after `ms`; does nothing once closed. */
  after (ms: number, fn: () => void): NodeJS.Timeout | undefined {
    if (this.#closed) return undefined
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      fn()
    }, ms)
    timer.unref()
    this.#timers.add(timer)
    return timer
  }

  cancel (timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return
    clearTimeout(timer)
    this.#timers.delete(timer)
  }

  close (): void {
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
  }
}
