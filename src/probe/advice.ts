import type { ProfileName } from '../emulator/profiles.js'
import type { Findings } from './profile-match.js'

/** The bridge's default POLL_TIMEOUT_MS (src/config.ts). */
const DEFAULT_POLL_TIMEOUT_MS = 40_000
/** Margin of POLL_TIMEOUT_MS over the hold, for a slow network or proxy. */
const POLL_MARGIN_MS = 10_000
/** A clock this far from ours is worth a word (the bridge copes with any). */
const CLOCK_NOTE_MS = 2000

/**
 * Bridge settings that fit the findings, and a line for each finding the
 * operator should know of. The bridge adapts at run time to most of them;
 * the notes say so rather than ask for settings it does not have.
 */
export function adviceFor (f: Findings, profiles: ProfileName[]): { settings: Record<string, string>, notes: string[] } {
  const settings: Record<string, string> = { UPSTREAM_URL: f.url, CHATAPI_TOKEN: '<the channel token>' }
  const notes: string[] = []
  if (f.token.accepted === 'no') notes.push('the token was refused: check CHATAPI_TOKEN (no whitespace around it) and the channel')
  if (f.token.accepted === 'unknown' && f.token.status === 404) notes.push('404 without "config not found": UPSTREAM_URL may have the wrong path prefix (…/chatapi, …/chatadapter/chatapi)')
  const hold = f.hold
  if (hold.held === 'yes' && typeof hold.heldMs === 'number') {
    const timeout = Math.max(DEFAULT_POLL_TIMEOUT_MS, Math.ceil((hold.heldMs + POLL_MARGIN_MS) / 1000) * 1000)
    settings.POLL_TIMEOUT_MS = String(timeout)
    if (hold.atLeast) notes.push(`the hold lasted longer than the probe waited (${hold.heldMs} ms): keep POLL_TIMEOUT_MS above the real hold`)
  }
  if (hold.held === 'no') notes.push('empty polls are answered at once: the bridge paces its idle polls itself')
  if (f.tsBound === 'undecidable') notes.push('times are printed in whole seconds but compared to the millisecond: whether ts is inclusive cannot be told; the bridge guards both ways')
  if (f.lateStamps.seen === 'yes') notes.push('answers are stored later than they are stamped: the bridge re-reads recent events to catch them')
  clockNotes(f, notes)
  if (f.cursor === 'per-client') notes.push('the server cursor is one per client: pollers of one client must not read it from two places')
  if (profiles.length > 0) notes.push(`to play this channel locally, run the emulator with EMULATOR_PROFILE=${profiles.join(',')}`)
  return { settings, notes }
}

/**
 * The HTTP Date header is UTC by definition: stamps hours away from it are
 * local time written without a zone; stamps that agree with it, both away
 * from our clock, come from a server whose clock is off.
 */
function clockNotes (f: Findings, notes: string[]): void {
  const { stampVsLocalMs, stampVsDateMs, dateVsLocalMs } = f.timestamps.clock
  const zoneLike = typeof stampVsDateMs === 'number' ? stampVsDateMs : stampVsLocalMs
  const quarters = typeof zoneLike === 'number' ? Math.round(zoneLike / 900_000) : 0
  if (typeof zoneLike === 'number' && quarters !== 0 && Math.abs(zoneLike - quarters * 900_000) < 60_000) {
    notes.push(`timestamps are ${(quarters / 4).toFixed(2)} h from UTC: the server probably writes local time without its zone; the bridge takes its time from the upstream's own answers`)
    return
  }
  const off = typeof dateVsLocalMs === 'number' ? dateVsLocalMs : stampVsLocalMs
  if (typeof off === 'number' && Math.abs(off) >= CLOCK_NOTE_MS) {
    notes.push(`the upstream's clock is about ${Math.round(off / 1000)} s from ours: the bridge takes its time from the upstream's own answers`)
  }
}
