import { accessOf } from './access.js'
import { getStateCall, setStateCall } from './endpoints.js'
import type { ProbeHttp } from './http.js'
import type { StateFinding } from './types.js'

/** What the probe stores as the chat state; a JSON object, the one kind a checking server surely takes. */
const PROBE_STATE = { probe: true }

/** GET of a fresh client's state, before anything is stored. */
export async function readFreshState (http: ProbeHttp, clientId: string): Promise<StateFinding['get']> {
  return accessOf(await http.call(getStateCall(clientId)))
}

/**
 * The POST, then a GET that shows whether it was kept. Made between two of
 * the probe's messages, so that the event a state change makes sits between
 * them in the log, where a late-stamped answer shows.
 */
export async function writeState (http: ProbeHttp, clientId: string): Promise<Omit<StateFinding, 'get'>> {
  const set = accessOf(await http.call(setStateCall(clientId, PROBE_STATE)))
  const after = await http.call(getStateCall(clientId))
  if (after.kind !== 'answer' || after.status !== 200) return { set, kept: 'unknown' }
  const kept = (after.json as { probe?: unknown } | undefined)?.probe === true
  return { set, kept: kept ? 'yes' : 'no' }
}
