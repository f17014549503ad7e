import type { ProfileName } from '../emulator/profiles.js'

/**
 * What `npm run probe` finds out about one channel's Chat API. Every verdict
 * is 'unknown' where the probe could not tell (a step failed, the server
 * answered something unexpected, or the run ran out of requests or time).
 */

export type Unknown = 'unknown'
export type YesNo = 'yes' | 'no' | Unknown

/** How a route answered: 2xx, 404, 400, another status, or no answer at all. */
export type Access = 'works' | 'not-found' | 'bad-request' | 'error' | Unknown

/** What a wrong token gets: `GET {url}/{token}x-probe-invalid/events`. */
export interface BadTokenFinding {
  status: number | Unknown
  /** The platform adapter's `ChannelChat config not found for token … and channel CHATAPI`. */
  configNotFound: YesNo
  body: 'json' | 'text' | 'html' | 'empty' | Unknown
  /** The start of the body, token masked. */
  excerpt: string
}

export interface TokenFinding {
  accepted: YesNo
  status: number | Unknown
}

export interface HoldFinding {
  held: YesNo
  /** How long the empty poll was held; with `atLeast`, the probe gave up then. */
  heldMs: number | Unknown
  atLeast: boolean
  /** What the expired (or, without a hold, the immediate) empty answer was. */
  expiry: 'empty-200' | '408' | 'other' | Unknown
  expiryStatus: number | Unknown
}

/** Where an event carries its time: an ISO string or an epoch number in `event.timestamp`, the outer element, nowhere. */
export type EventTimeFormat = 'iso' | 'epoch' | 'outer' | 'missing' | 'mixed' | Unknown

export interface ClockFinding {
  /** Upstream stamp minus our clock (the midpoint of the request), in ms. */
  stampVsLocalMs: number | Unknown
  /** Upstream stamp minus the answer's HTTP Date header (whole seconds), in ms. */
  stampVsDateMs: number | Unknown
  /** The HTTP Date header minus our clock, in ms. */
  dateVsLocalMs: number | Unknown
}

export interface TimestampFinding {
  /** The `timestamp` of the probe's first send answer, as written. */
  sample: string | Unknown
  /** Printed with a fraction of a second, or whole seconds. */
  precision: 'ms' | 'seconds' | Unknown
  /** With whole-second prints: whether the server still compares `ts` to the millisecond. */
  keepsMs: YesNo
  /** 'none', 'Z', an offset such as '+03:00', or 'mixed'. */
  zone: string
  eventTimes: EventTimeFormat
  /** Event types seen with no time at all. */
  untimedTypes: string[]
  clock: ClockFinding
}

export interface HistoryFinding {
  shape: 'pairs' | 'entries' | 'events' | 'empty' | 'other' | Unknown
  status: number | Unknown
  /** Items of the answer without parameters. */
  items: number | Unknown
  /** Whether `limit=1` gives one item; 'rejected' for a 4xx. */
  limit: YesNo | 'rejected'
  /** Whether a `from`/`to` span in the future gives none. */
  fromTo: YesNo | 'rejected'
  /** Whether a `fromTimestamp`/`toTimestamp` span in the future gives none. */
  fromTimestamp: YesNo | 'rejected'
}

export interface StateFinding {
  get: Access
  set: Access
  /** A GET after the POST returns what was posted. */
  kept: YesNo
}

export interface StatusFinding {
  access: Access
  /** The `status` values answered for the probe's messages. */
  seen: string[]
}

export interface LateStampFinding {
  /** An event stamped earlier than an event stored before it. */
  seen: YesNo
  lagMs: number | Unknown
}

export interface ProbeReport {
  /** The Chat API base, without the token. */
  url: string
  clientId: string
  startedAt: string
  durationMs: number
  requests: number
  badToken: BadTokenFinding
  token: TokenFinding
  hold: HoldFinding
  timestamps: TimestampFinding
  tsBound: 'inclusive' | 'exclusive' | 'undecidable' | Unknown
  cidScope: 'scoped' | 'unscoped' | Unknown
  cursor: 'per-cid' | 'per-client' | Unknown
  history: HistoryFinding
  state: StateFinding
  messageStatus: StatusFinding
  lateStamps: LateStampFinding
  /** The emulator profiles that play this upstream; [] is the emulator's default. */
  profiles: ProfileName[]
  /** Findings that no emulator profile plays. */
  unmatched: string[]
  /** Bridge settings that fit, as environment variables. */
  settings: Record<string, string>
  notes: string[]
  /** Steps that failed, token masked. */
  errors: string[]
}

export interface ProbeOptions {
  /** The Chat API base, e.g. https://bot.jaicp.com/chatapi. */
  url: string
  token: string
  /** Default `probe-<random>`; the probe also uses `<clientId>-cursor`. */
  clientId?: string
  /** How long an empty poll may be held before the probe stops waiting. Default 30000. */
  holdLimitMs?: number
  /** Progress lines, token masked. */
  log?: (line: string) => void
}
