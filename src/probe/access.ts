import type { Outcome } from './http.js'
import type { Access } from './types.js'

/** How a route answered, for the routes whose existence on a live server is not public. */
export function accessOf (outcome: Outcome): Access {
  if (outcome.kind !== 'answer') return 'unknown'
  if (outcome.status >= 200 && outcome.status < 300) return 'works'
  if (outcome.status === 404) return 'not-found'
  return outcome.status === 400 ? 'bad-request' : 'error'
}
