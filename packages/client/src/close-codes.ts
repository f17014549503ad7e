/**
 * The close codes of protocol v1: their names, the reason the bridge sends
 * with each, and what the client does after each. The bridge takes the codes
 * and reasons from here, so that the two ends cannot tell them differently.
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  TOO_LARGE: 1009,
  INTERNAL_ERROR: 1011,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4401,
  FORBIDDEN_ORIGIN: 4403,
  UNKNOWN_CHANNEL: 4404,
  HELLO_TIMEOUT: 4408,
  TOO_SLOW: 4409,
  TOO_MANY_FRAMES: 4429,
  UPSTREAM_REJECTED_CHANNEL: 4502
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** The close reasons the bridge sends with each code; short, since a close frame holds at most 123 bytes. */
export const closeReason: Readonly<Record<CloseCode, string>> = {
  1000: 'bye',
  1001: 'server going away',
  1003: 'binary frames are not accepted',
  1009: 'frame too large',
  1011: 'internal error',
  1012: 'server restarting, reconnect and resume',
  1013: 'server busy, try again later',
  4401: 'credential missing, invalid or expired',
  4403: 'origin not allowed',
  4404: 'no such channel',
  4408: 'no hello in time',
  4409: 'too slow to read events',
  4429: 'too many frames',
  4502: 'upstream rejects the channel'
}

export type CloseAction =
  /** reconnect after the usual backoff */
  | 'reconnect'
  /** reconnect, but only after a long pause: the bridge is busy, or found us too chatty */
  | 'slow-down'
  /** do not reconnect: retrying cannot help until something changes */
  | 'stop'

/**
 * What the client does when the bridge closes its socket, by close code, as
 * protocol v1 asks, and what it tells when the close came with no reason.
 * One table, so that the policy is read in one place; typed by CloseCode so
 * that a code the bridge uses cannot be missing from it.
 */
const POLICY: Readonly<Record<CloseCode, { action: CloseAction, meaning: string }>> = {
  1000: { action: 'reconnect', meaning: 'normal close' },
  1001: { action: 'reconnect', meaning: 'the server is going away' },
  1003: { action: 'stop', meaning: 'a binary frame was sent (a bug in this client)' },
  1009: { action: 'stop', meaning: 'a frame was too large (a bug in the caller or this client)' },
  1011: { action: 'reconnect', meaning: 'internal error' },
  1012: { action: 'reconnect', meaning: 'the server restarts or drains' },
  1013: { action: 'slow-down', meaning: 'the server is busy' },
  4401: { action: 'stop', meaning: 'credential missing, invalid or expired' },
  4403: { action: 'stop', meaning: 'origin not allowed' },
  4404: { action: 'stop', meaning: 'the bridge serves no channel of that name' },
  4408: { action: 'reconnect', meaning: 'no hello in time' },
  4409: { action: 'reconnect', meaning: 'too slow to read events' },
  4429: { action: 'slow-down', meaning: 'too many frames' },
  4502: { action: 'stop', meaning: 'the Chat API refuses the channel' }
}

export const CLOSE_CODES: Readonly<Record<number, { action: CloseAction, meaning: string }>> = POLICY

/** Any code not in the table (1006 for a dropped connection, say) is worth a reconnect. */
export function closeAction (code: number): CloseAction {
  return CLOSE_CODES[code]?.action ?? 'reconnect'
}

export function closeMeaning (code: number): string {
  return CLOSE_CODES[code]?.meaning ?? `connection closed (${code})`
}
