/**
 * Profiles: readings of the live Chat API that public evidence allows but
 * does not settle (hold or no hold, inclusive or exclusive `ts`, how times
 * are written, what `cid` scopes, how a bad token and the history answer).
 * The emulator's default is one reading; each profile switches one point to
 * another, and they combine, so that the bridge's tests run against each.
 */

/** Every profile with a line of meaning, in a stable order (listed in errors and docs). */
export const PROFILES = {
  'no-hold': '/events never holds: with nothing to return it answers {"events":[]} at once',
  'timeout-408': 'a held /events poll whose hold time expires answers 408 {"error":"request.timeout"} instead of an empty 200',
  'exclusive-ts': 'the ts bound of /events is exclusive: only events with a time after ts',
  'whole-seconds': 'the upstream keeps whole seconds: times are truncated to the second and printed without a fraction',
  'second-stamps': 'times are kept and compared to the millisecond but printed without the fraction',
  zoned: 'times are printed as local time at +03:00 with the offset, e.g. 2026-11-24T15:32:13.262+03:00',
  'late-stamps': 'a turn\'s botResponse is stored lateStampMs after its clientRequest but stamped with the request\'s time',
  'unscoped-cid': 'cid scopes nothing: a ts poll sees the client\'s whole log, and the server-side cursor is one per client',
  'not-found-token': 'an unknown token is a 404 with a text/plain "ChannelChat config not found for token …" on every route',
  'entry-history': 'history answers {totalCount, messages} with one entry per message (CLIENT, BOT, OPERATOR) and takes fromTimestamp, toTimestamp, limit',
  'epoch-times': 'the timestamp of every event is an epoch-milliseconds number',
  'outer-times': 'the time of every event is on the outer element; event.timestamp is null',
  'untimed-state': 'stateUpdate events carry no timestamp'
} as const satisfies Record<string, string>

export type ProfileName = keyof typeof PROFILES

export function isProfileName (name: string): name is ProfileName {
  return Object.hasOwn(PROFILES, name)
}

/**
 * Profile names from a comma-separated list, as EMULATOR_PROFILE gives them:
 * spaces around a name and empty items are ignored, a repeat counts once.
 */
export function parseProfiles (text: string): ProfileName[] {
  const names: ProfileName[] = []
  for (const item of text.split(',')) {
    const name = item.trim()
    if (name === '') continue
    if (!isProfileName(name)) {
      throw new Error(`unknown emulator profile "${name}": expected a comma-separated list of ${Object.keys(PROFILES).join(', ')}`)
    }
    if (!names.includes(name)) names.push(name)
  }
  return names
}

/**
 * One flag per profile, true when it is on. Each part that a profile changes
 * reads its own flags from this object, so that a profile's logic sits in
 * one place and the profile list is read once, here.
 */
export type ProfileFlags = Readonly<Record<ProfileName, boolean>>

export function flagsOf (profiles: readonly ProfileName[]): ProfileFlags {
  const flags = {} as Record<ProfileName, boolean>
  for (const name of Object.keys(PROFILES) as ProfileName[]) flags[name] = profiles.includes(name)
  return flags
}

/** The default behaviour: every profile off. */
export const NO_PROFILE: ProfileFlags = flagsOf([])
