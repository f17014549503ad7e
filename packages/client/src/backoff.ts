export interface Backoff {
  /** Ceiling of the first retry's delay. */
  baseMs: number
  /** Largest ceiling: the delay never exceeds it. */
  maxMs: number
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 500, maxMs: 30_000 }

/**
 * Full jitter: retry n (from 0) waits a random time in
 * [0, min(maxMs, baseMs * 2^n)), so that the clients of a restarted bridge
 * do not all come back in the same second.
 */
export function backoffDelay (attempt: number, b: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(Math.max(attempt, 0), 30))
  return Math.floor(random() * ceiling)
}

/** After a 4429 (too many frames) or a 1013 (busy): somewhere between half the cap and the cap. */
export function slowDownDelay (b: Backoff, random: () => number = Math.random): number {
  return Math.floor(b.maxMs / 2 + random() * b.maxMs / 2)
}
