import { parseUpstreamTime } from '../upstream/calls.js'
import type { EventTimeFormat } from './types.js'

/**
 * How the upstream writes a time, read from the raw value: the probe needs
 * more than the instant the bridge reads (src/upstream/calls.ts does that,
 * and its reading is the one used here, so that the probe's `ts` polls are
 * the bridge's).
 */

export type TimeSpot = 'iso' | 'epoch' | 'outer' | 'missing'

export interface EventTime {
  spot: TimeSpot
  raw: unknown
  /** Epoch ms as the bridge reads the raw value. */
  ms: number | undefined
}

/** An event's time: `event.timestamp` (ISO or epoch), else the element's own `timestamp`. */
export function eventTimeOf (element: Record<string, unknown>): EventTime {
  const inner = element.event
  const raw = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>).timestamp : undefined
  if (typeof raw === 'string') return { spot: 'iso', raw, ms: parseUpstreamTime(raw) }
  if (typeof raw === 'number') return { spot: 'epoch', raw, ms: parseUpstreamTime(raw) }
  const outer = element.timestamp
  if (typeof outer === 'string' || typeof outer === 'number') return { spot: 'outer', raw: outer, ms: parseUpstreamTime(outer) }
  return { spot: 'missing', raw: undefined, ms: undefined }
}

/** One format when every timed event agrees; events with no time are listed apart, by type. */
export function eventTimeFormat (times: EventTime[]): EventTimeFormat {
  const spots = new Set(times.map((t) => t.spot).filter((s) => s !== 'missing'))
  if (spots.size === 0) return times.length === 0 ? 'unknown' : 'missing'
  return spots.size === 1 ? [...spots][0] as EventTimeFormat : 'mixed'
}

/** 'ms' when the value has a fraction of a second (or an epoch that is not whole seconds). */
export function precisionOf (raw: unknown): 'ms' | 'seconds' | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? (raw % 1000 === 0 ? 'seconds' : 'ms') : undefined
  if (typeof raw !== 'string') return undefined
  if (/T?\d\d:\d\d:\d\d[.,]\d+/.test(raw)) return 'ms'
  return /\d\d:\d\d:\d\d/.test(raw) ? 'seconds' : undefined
}

/**
 * Milliseconds as soon as one value has them; whole seconds only when every
 * value is whole (an epoch number is whole by chance once in a thousand).
 */
export function precisionOfAll (raws: unknown[]): 'ms' | 'seconds' | 'unknown' {
  const seen = raws.map(precisionOf).filter((p) => p !== undefined)
  if (seen.includes('ms')) return 'ms'
  return seen.length > 0 ? 'seconds' : 'unknown'
}

/** The zone of an ISO string as written: 'none', 'Z' or '+03:00'; undefined for a number. */
export function zoneOf (raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined
  if (/Z$/i.test(raw)) return 'Z'
  const offset = /([+-])(\d\d):?(\d\d)$/.exec(raw)
  // A date alone (2024-05-01) ends in "-dd" too: an offset follows a time.
  if (offset !== null && /\d\d:\d\d/.test(raw.slice(0, offset.index))) return `${offset[1]}${offset[2]}:${offset[3]}`
  return 'none'
}

export function zoneOfAll (raws: unknown[]): string {
  const zones = new Set(raws.map(zoneOf).filter((z) => z !== undefined))
  if (zones.size === 0) return 'unknown'
  return zones.size === 1 ? [...zones][0] as string : 'mixed'
}
