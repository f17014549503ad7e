import { QUICK_MS } from './limits.js'
import { badTokenOf, eventsCall, unreadCountCall } from './endpoints.js'
import type { Answer, Outcome, ProbeHttp } from './http.js'
import type { BadTokenFinding, TokenFinding } from './types.js'

/** The platform adapter's answer to a token it does not know, on every method. */
const CONFIG_NOT_FOUND = /config not found/i

export interface TokenChecks {
  badToken: BadTokenFinding
  token: TokenFinding
  /** Neither call got any HTTP answer (refused, unresolved, or silent): the upstream cannot be reached at all. */
  unreachable: string | undefined
  /** Round trip of the real-token call, a measure of the network to the upstream. */
  rttMs: number
}

/**
 * How the server answers a token that surely names no channel, then whether
 * it takes the real one, with a call that changes nothing.
 */
export async function checkTokens (http: ProbeHttp, token: string, clientId: string): Promise<TokenChecks> {
  // QUICK_MS: a server that held this poll would be one that checks no token at all.
  const bad = await http.call(eventsCall({ clientId, cid: `${clientId}-bad`, timeoutMs: QUICK_MS }, badTokenOf(token)))
  const real = await http.call(unreadCountCall(clientId))
  const unreachable = bad.kind !== 'answer' && real.kind !== 'answer' ? real.reason : undefined
  return { badToken: badTokenFinding(http, bad), token: tokenFinding(real), unreachable, rttMs: real.receivedAt - real.sentAt }
}

function badTokenFinding (http: ProbeHttp, bad: Outcome): BadTokenFinding {
  if (bad.kind !== 'answer') return { status: 'unknown', configNotFound: 'unknown', body: 'unknown', excerpt: bad.reason }
  return {
    status: bad.status,
    configNotFound: CONFIG_NOT_FOUND.test(bad.text) ? 'yes' : 'no',
    body: bodyKind(bad),
    excerpt: http.mask(bad.text.replace(/\s+/g, ' ').trim().slice(0, 160))
  }
}

function tokenFinding (real: Outcome): TokenFinding {
  if (real.kind !== 'answer') return { accepted: 'unknown', status: 'unknown' }
  const refused = real.status === 401 || real.status === 403 || (real.status === 404 && CONFIG_NOT_FOUND.test(real.text))
  if (refused) return { accepted: 'no', status: real.status }
  return { accepted: real.status >= 200 && real.status < 300 ? 'yes' : 'unknown', status: real.status }
}

function bodyKind (a: Answer): BadTokenFinding['body'] {
  if (a.text.trim() === '') return 'empty'
  if (a.json !== undefined) return 'json'
  return /^\s*</.test(a.text) ? 'html' : 'text'
}
