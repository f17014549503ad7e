import type { ClockFinding, HistoryFinding, HoldFinding, ProbeReport, TimestampFinding } from './types.js'

/**
 * The probe's report as text: one line per finding, then the emulator
 * profiles, the settings and the notes. Pure: the report holds no token (the
 * probe masks it where it could come in), so neither does this.
 */
export function formatReport (r: ProbeReport): string {
  const rows: Array<[string, string]> = [
    ['bad token', badToken(r)],
    ['token', r.token.accepted === 'yes' ? `accepted (${r.token.status})` : `${r.token.accepted === 'no' ? 'refused' : 'unknown'} (${r.token.status})`],
    ['hold', hold(r.hold)],
    ['timestamps', timestamps(r.timestamps)],
    ['clock', clock(r.timestamps.clock)],
    ['ts bound', r.tsBound === 'undecidable' ? 'undecidable (milliseconds kept but not printed)' : r.tsBound],
    ['cid scope', { scoped: 'a cid sees events from its first poll on', unscoped: 'none: a ts poll on any cid sees the whole client log', unknown: 'unknown' }[r.cidScope]],
    ['server cursor', { 'per-cid': 'one per (client, cid)', 'per-client': 'one per client, shared by its cids', unknown: 'unknown' }[r.cursor]],
    ['history', history(r.history)],
    ['state', `GET ${r.state.get}, POST ${r.state.set}, kept: ${r.state.kept}`],
    ['message status', r.messageStatus.seen.length > 0 ? r.messageStatus.seen.join(', ') : r.messageStatus.access],
    ['late stamps', r.lateStamps.seen === 'yes' ? `yes, stamped up to ${String(r.lateStamps.lagMs)} ms before an event stored earlier` : r.lateStamps.seen]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = [
    `Chat API probe of ${r.url}: client ${r.clientId}, ${r.requests} requests, ${(r.durationMs / 1000).toFixed(1)} s`,
    '',
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    '',
    `Emulator profiles: ${r.profiles.length > 0 ? r.profiles.join(', ') : "none (the emulator's default)"}`
  ]
  if (r.unmatched.length > 0) lines.push(`Played by no profile: ${r.unmatched.join('; ')}`)
  lines.push(`Settings: ${Object.entries(r.settings).map(([k, v]) => `${k}=${v}`).join(' ')}`)
  if (r.notes.length > 0) lines.push('Notes:', ...r.notes.map((n) => `  - ${n}`))
  if (r.errors.length > 0) lines.push('Steps that failed:', ...r.errors.map((e) => `  - ${e}`))
  return lines.join('\n') + '\n'
}

function badToken (r: ProbeReport): string {
  const b = r.badToken
  if (b.status === 'unknown') return `unknown (${b.excerpt})`
  const says = b.configNotFound === 'yes' ? ', "config not found"' : ''
  return `${b.status} ${b.body}${says}${b.excerpt === '' ? '' : `: ${b.excerpt}`}`
}

function hold (h: HoldFinding): string {
  if (h.held === 'unknown') return 'unknown'
  const expiry = h.expiry === 'empty-200' ? '200 {"events":[]}' : h.expiry === '408' ? '408' : `${String(h.expiryStatus)}`
  if (h.held === 'no') return `not held: answered ${expiry} at once (${String(h.heldMs)} ms)`
  const ms = h.heldMs as number
  if (h.atLeast) return `held at least ${(ms / 1000).toFixed(1)} s (the probe stopped waiting)`
  return `held ${(ms / 1000).toFixed(1)} s, then ${expiry}`
}

function timestamps (t: TimestampFinding): string {
  const precision = t.precision === 'seconds'
    ? `whole seconds${t.keepsMs === 'yes' ? ' (milliseconds kept unprinted)' : t.keepsMs === 'no' ? ' (kept as such)' : ''}`
    : t.precision === 'ms' ? 'milliseconds' : 'precision unknown'
  const zone = t.zone === 'none' ? 'no zone' : `zone ${t.zone}`
  const events = { iso: 'ISO in event.timestamp', epoch: 'epoch ms in event.timestamp', outer: 'on the outer element', missing: 'missing', mixed: 'mixed', unknown: 'unknown' }[t.eventTimes]
  const untimed = t.untimedTypes.length > 0 ? `; no time on ${t.untimedTypes.join(', ')}` : ''
  return `${t.sample}: ${precision}, ${zone}; events: ${events}${untimed}`
}

function clock (c: ClockFinding): string {
  const signed = (v: number | 'unknown'): string => typeof v === 'number' ? `${v >= 0 ? '+' : ''}${v} ms` : 'unknown'
  return `stamps ${signed(c.stampVsLocalMs)} from our clock, ${signed(c.stampVsDateMs)} from the HTTP Date header (whole seconds)`
}

function history (h: HistoryFinding): string {
  const shape = {
    pairs: 'request/response pairs {messages:[{questionId,timestamp,request,response}]}',
    entries: 'one entry per message {totalCount, messages:[{author,textMessage,replies,…}]}',
    events: 'an events list',
    empty: 'empty',
    other: 'another shape',
    unknown: `unknown (${String(h.status)})`
  }[h.shape]
  if (h.shape === 'unknown') return shape
  return `${shape}; ${String(h.items)} items; limit: ${h.limit}, from/to: ${h.fromTo}, fromTimestamp/toTimestamp: ${h.fromTimestamp}`
}
