/**
 * ISO-8601 as the Chat API and its sibling APIs write it: a date, an optional
 * time (`T` or a space, seconds and fraction optional), an optional zone.
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i

/**
 * Below this, an epoch number is read as seconds: as milliseconds it would
 * fall before March 1973, as seconds it reaches past the year 5000.
 */
const SECONDS_BELOW = 1e11

/**
 * An upstream time as epoch milliseconds, or undefined when it is none.
 *
 * The Chat API writes `2022-09-28T12:32:13.262` with no zone, meaning UTC;
 * other APIs of the platform add `Z`, and a server may keep whole seconds or
 * send epoch numbers. `Date.parse` would read a zone-less time as local time,
 * so the fields are read here and a missing zone is taken as UTC.
 */
export function parseTimestamp (value: unknown): number | undefined {
  if (typeof value === 'number') return epoch(value)
  if (typeof value !== 'string') return undefined
  const text = value.trim()
  if (/^\d+(?:\.\d+)?$/.test(text)) return epoch(Number(text))
  const m = ISO.exec(text)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((f) => Number(f ?? 0)) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 60) return undefined
  // Only milliseconds: microseconds and beyond are cut, not rounded, so a time never moves forward.
  const ms = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'))
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMs(m[8])
}

function epoch (n: number): number | undefined {
  if (!Number.isFinite(n) || n < 0) return undefined
  return n < SECONDS_BELOW ? Math.round(n * 1000) : Math.floor(n)
}

/** `Z`, `+03`, `+0300` or `-03:30` as milliseconds east of UTC; none is UTC. */
function offsetMs (zone: string | undefined): number {
  if (zone === undefined || zone.toUpperCase() === 'Z') return 0
  const sign = zone.startsWith('-') ? -1 : 1
  const digits = zone.slice(1).replace(':', '')
  const hours = Number(digits.slice(0, 2))
  const minutes = Number(digits.slice(2) || '0')
  return sign * (hours * 60 + minutes) * 60_000
}
