/**
 * What the client does when the bridge closes its socket, by close code, as
 * protocol v1 asks. One table, so that the policy is read in one place.
 */
export type CloseAction =
  /** reconnect after the usual backoff */
  | 'reconnect'
  /** reconnect, but only after a long pause: the bridge is busy, or found us too chatty */
  | 'slow-down'
  /** do not reconnect: retrying cannot help until something changes */
  | 'stop'

export const CLOSE_CODES: Readonly<Record<number, { action: CloseAction, meaning: string }>> = {
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

/** Any code not in the table (1006 for a dropped connection, say) is worth a reconnect. */
export function closeAction (code: number): CloseAction {
  return CLOSE_CODES[code]?.action ?? 'reconnect'
}

export function closeMeaning (code: number): string {
  return CLOSE_CODES[code]?.meaning ?? `connection closed (${code})`
}
