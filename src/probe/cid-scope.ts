import type { ProbeHttp } from './http.js'
import { QUICK_MS } from './limits.js'
import { poll } from './poll.js'
import type { ProbeReport } from './types.js'

/**
 * What `cid` scopes: a poll from `ts=0` on a cid nobody used returns the
 * client's earlier events (cid scopes nothing) or none (a cid sees only what
 * came after the server first saw it). None means a held poll, which the
 * probe ends after QUICK_MS; the probe makes no event on this client after
 * it, so the abandoned poll takes nothing from anyone.
 */
export async function probeCidScope (http: ProbeHttp, clientId: string, freshCid: string): Promise<ProbeReport['cidScope']> {
  const result = await poll(http, { clientId, cid: freshCid, ts: 0, timeoutMs: QUICK_MS })
  if (result.kind === 'failed') return 'unknown'
  return result.kind === 'events' ? 'unscoped' : 'scoped'
}
