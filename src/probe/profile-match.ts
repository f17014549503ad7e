import { PROFILES, type ProfileName } from '../emulator/profiles.js'
import type { ProbeReport } from './types.js'

export type Findings = Omit<ProbeReport, 'profiles' | 'unmatched' | 'settings' | 'notes'>

/**
 * Which emulator profile each finding is, so that the channel can be played
 * locally (EMULATOR_PROFILE=…). A finding the emulator's default plays, or
 * an 'unknown', names none; one that no profile plays is listed apart.
 */
export function matchProfiles (f: Findings): { profiles: ProfileName[], unmatched: string[] } {
  const on = new Set<ProfileName>()
  const unmatched: string[] = []
  const ts = f.timestamps

  if (f.hold.held === 'no') on.add('no-hold')
  if (f.hold.expiry === '408') on.add('timeout-408')
  if (f.hold.expiry === 'other') unmatched.push(`an empty poll ends with ${String(f.hold.expiryStatus)}`)
  if (f.tsBound === 'exclusive') on.add('exclusive-ts')
  if (ts.precision === 'seconds') on.add(ts.keepsMs === 'yes' ? 'second-stamps' : 'whole-seconds')
  if (/^[+-]\d\d:\d\d$/.test(ts.zone)) on.add('zoned')
  else if (ts.zone === 'Z' || ts.zone === 'mixed') unmatched.push(`times written with zone ${ts.zone}`)
  if (f.lateStamps.seen === 'yes') on.add('late-stamps')
  if (f.cidScope === 'unscoped') on.add('unscoped-cid')
  if (f.cidScope === 'unscoped' && f.cursor === 'per-cid') unmatched.push('cid scopes nothing, yet the server cursor is per (client, cid)')
  if (f.cidScope === 'scoped' && f.cursor === 'per-client') unmatched.push('cid scopes a ts poll, yet the server cursor is one per client')
  matchBadToken(f, on, unmatched)
  if (f.history.shape === 'entries') on.add('entry-history')
  else if (f.history.shape === 'events' || f.history.shape === 'other') unmatched.push(`history of shape "${f.history.shape}"`)
  if (ts.eventTimes === 'epoch') on.add('epoch-times')
  if (ts.eventTimes === 'outer') on.add('outer-times')
  if (ts.eventTimes === 'mixed' || ts.eventTimes === 'missing') unmatched.push(`event times: ${ts.eventTimes}`)
  for (const type of ts.untimedTypes) {
    if (type === 'stateUpdate') on.add('untimed-state')
    else unmatched.push(`${type} events carry no time`)
  }
  if (f.state.get === 'not-found' || f.state.set === 'not-found') unmatched.push('no state route at /client/{clientId}/state')
  // In the order of PROFILES, so that a report reads the same way every time.
  const profiles = (Object.keys(PROFILES) as ProfileName[]).filter((name) => on.has(name))
  return { profiles, unmatched }
}

function matchBadToken (f: Findings, on: Set<ProfileName>, unmatched: string[]): void {
  const { status, configNotFound } = f.badToken
  if (status === 404 && configNotFound === 'yes') on.add('not-found-token')
  else if (status !== 'unknown' && status !== 401) unmatched.push(`a wrong token gets ${status}${configNotFound === 'yes' ? ' "config not found"' : ''}`)
}
