/**
 * Capped exponential backoff with full jitter: the n-th retry (n >= 1) waits a
 * random time in [0, min(max, base * 2^(n-1))), so that many pollers failing
 * together do not retry together.
 */
export function backoffDelay (attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.floor(random() * ceiling)
}
