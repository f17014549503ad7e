/**
 * The time the client reads and the timers it sets: every one of them (the
 * connect timeout, the heartbeat watchdog, the waits between reconnects, the
 * request timeouts) goes through a clock, so that a test can move time on
 * without waiting for it.
 */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

type TimerHandle = Parameters<typeof globalThis.clearTimeout>[0]

/** The globals, looked up at each call, so that a page or test that replaces them later is still obeyed. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => { globalThis.clearTimeout(handle as TimerHandle) }
}
