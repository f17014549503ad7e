import { randomBytes } from 'node:crypto'
import { adviceFor } from './advice.js'
import { probeCidScope } from './cid-scope.js'
import { probeCursor } from './cursor-probe.js'
import { probeHistory } from './history.js'
import { measureHold, unknownHold } from './hold.js'
import { ProbeHttp } from './http.js'
import { lateStampFinding } from './late-stamps.js'
import { DEFAULT_HOLD_LIMIT_MS, MAX_REQUESTS, REST_BUDGET_MS, SETTLE_MS } from './limits.js'
import { probeStatuses } from './message-status.js'
import { matchProfiles, type Findings } from './profile-match.js'
import { readFreshState, writeState } from './state.js'
import { checkTokens, type TokenChecks } from './token.js'
import { eventTimeOf } from './times.js'
import { timestampFinding, unknownClock } from './timestamps.js'
import { probeTsBound } from './ts-bound.js'
import { collectEvents, sendTurn, type SentTurn } from './turn.js'
import type { ProbeOptions, ProbeReport } from './types.js'

/** The upstream gave no HTTP answer at all; its message has the token masked. */
export class ProbeUnreachableError extends Error {
  readonly code = 'PROBE_UNREACHABLE'
  constructor (message: string) {
    super(message)
    this.name = 'ProbeUnreachableError'
  }
}

/** The probe's own connection id; the other cids it uses are each used once. */
const CID = 'probe-a'

/**
 * Talks to a Chat API with throwaway clients and tells how this channel
 * behaves where the documentation leaves it open, which emulator profiles
 * play it, and which bridge settings fit. A bounded number of requests,
 * each with a timeout, inside one deadline. Rejects with
 * ProbeUnreachableError only when no request got any answer.
 */
export async function probeChatApi (options: ProbeOptions): Promise<ProbeReport> {
  const startedAt = Date.now()
  const holdLimitMs = options.holdLimitMs ?? DEFAULT_HOLD_LIMIT_MS
  const clientId = options.clientId ?? `probe-${randomBytes(6).toString('hex')}`
  const http = new ProbeHttp({ url: options.url, token: options.token, maxRequests: MAX_REQUESTS, deadline: startedAt + holdLimitMs + REST_BUDGET_MS })
  const log = (line: string): void => options.log?.(http.mask(line))
  const url = http.mask(options.url.replace(/\/+$/, ''))
  try {
    log(`probing ${url} as client ${clientId}`)
    const tokens = await checkTokens(http, options.token, clientId)
    if (tokens.unreachable !== undefined) throw new ProbeUnreachableError(`cannot reach ${url}: ${tokens.unreachable}`)
    const base = { url, clientId, startedAt: new Date(startedAt).toISOString(), badToken: tokens.badToken, token: tokens.token }
    const findings = tokens.token.accepted === 'no'
      ? { ...blankFindings(), ...base }
      : { ...base, ...await probeChannel(http, clientId, holdLimitMs, tokens, log) }
    const done = { ...findings, durationMs: Date.now() - startedAt, requests: http.requests }
    const { profiles, unmatched } = matchProfiles(done)
    return { ...done, profiles, unmatched, ...adviceFor(done, profiles) }
  } finally {
    await http.close()
  }
}

type ChannelFindings = Omit<Findings, 'url' | 'clientId' | 'startedAt' | 'badToken' | 'token' | 'durationMs' | 'requests'>

/** Everything after the token checks, in an order that keeps each finding from disturbing the next. */
async function probeChannel (http: ProbeHttp, clientId: string, holdLimitMs: number, tokens: TokenChecks, log: (line: string) => void): Promise<ChannelFindings> {
  const errors: string[] = []
  log(`holding an empty poll (up to ${holdLimitMs} ms); meanwhile the server cursor, on client ${clientId}-cursor`)
  // The cursor test has a client of its own, so that it may run while the hold is measured.
  const [hold, cursor, get] = await Promise.all([
    measureHold(http, clientId, CID, holdLimitMs),
    probeCursor(http, `${clientId}-cursor`, Math.max(SETTLE_MS, 2 * tokens.rttMs), errors),
    readFreshState(http, clientId)
  ])

  log('sending two messages, with a state change between them')
  const turns: SentTurn[] = []
  const first = await sendTurn(http, clientId, CID, 'probe', errors)
  const state = { get, ...await writeState(http, clientId) }
  const second = await sendTurn(http, clientId, CID, 'probe again', errors)
  for (const turn of [first, second]) if (turn !== undefined) turns.push(turn)
  const events = turns.length === 0 ? [] : await collectEvents(http, clientId, CID, turns, errors)

  log(`reading ${events.length} events: timestamps, the ts bound, the cid scope`)
  const stamps = timestampFinding(turns, events)
  const { tsBound, keepsMs } = await probeTsBound(http, clientId, CID, events, stamps.precision)
  const cidScope = events.length === 0 ? 'unknown' : await probeCidScope(http, clientId, 'probe-fresh')

  log('reading the history and the message statuses')
  const messageStatus = await probeStatuses(http, clientId, turns.map((t) => t.questionId))
  const latest = Math.max(Date.now(), ...events.map((e) => eventTimeOf(e).ms ?? 0))
  const history = await probeHistory(http, clientId, latest)
  return {
    hold,
    timestamps: { ...stamps, keepsMs },
    tsBound,
    cidScope,
    cursor,
    history,
    state,
    messageStatus,
    lateStamps: lateStampFinding(events),
    errors
  }
}

/** The findings of a probe that could not go past the token. */
function blankFindings (): ChannelFindings {
  return {
    hold: unknownHold,
    timestamps: {
      sample: 'unknown',
      precision: 'unknown',
      keepsMs: 'unknown',
      zone: 'unknown',
      eventTimes: 'unknown',
      untimedTypes: [],
      clock: unknownClock
    },
    tsBound: 'unknown',
    cidScope: 'unknown',
    cursor: 'unknown',
    history: { shape: 'unknown', status: 'unknown', items: 'unknown', limit: 'unknown', fromTo: 'unknown', fromTimestamp: 'unknown' },
    state: { get: 'unknown', set: 'unknown', kept: 'unknown' },
    messageStatus: { access: 'unknown', seen: [] },
    lateStamps: { seen: 'unknown', lagMs: 'unknown' },
    errors: ['the token was refused: nothing past the token checks was probed']
  }
}
