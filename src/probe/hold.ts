import { AT_ONCE_MS } from './limits.js'
import { poll } from './poll.js'
import type { Answer, ProbeHttp } from './http.js'
import type { HoldFinding } from './types.js'

/**
 * Whether an empty poll is held, how long, and what its expiry answers. The
 * client is fresh, so a poll from now on has nothing to return; it also makes
 * the server see `cid` before the probe's messages, which a server that
 * scopes a cid from its first sight needs.
 */
export async function measureHold (http: ProbeHttp, clientId: string, cid: string, holdLimitMs: number): Promise<HoldFinding> {
  const result = await poll(http, { clientId, cid, ts: Date.now(), timeoutMs: holdLimitMs })
  // A fresh client has no events: an answer with some measures nothing.
  if (result.kind === 'events' || (result.kind === 'failed' && result.answer === undefined)) return unknownHold
  if (result.kind === 'nothing' && result.why === 'held') {
    return { held: 'yes', heldMs: result.receivedAt - result.sentAt, atLeast: true, expiry: 'unknown', expiryStatus: 'unknown' }
  }
  const answer = result.answer as Answer
  const heldMs = answer.receivedAt - answer.sentAt
  const held = heldMs < AT_ONCE_MS ? 'no' : 'yes'
  // An error at once is a failed poll; one after a hold is how the hold ends (a proxy's 504, say).
  if (result.kind === 'failed' && held === 'no') return unknownHold
  const expiry = result.kind === 'failed' ? 'other' : result.why === '408' ? '408' : 'empty-200'
  return { held, heldMs, atLeast: false, expiry, expiryStatus: answer.status }
}

/** A hold that could not be measured. */
export const unknownHold: HoldFinding = { held: 'unknown', heldMs: 'unknown', atLeast: false, expiry: 'unknown', expiryStatus: 'unknown' }
