/**
 * Every error code a client can see in a `result` or `error` frame, and every
 * close code the server uses, with the meaning it has in protocol v1.
 */

export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_READY: 'NOT_READY',
  RATE_LIMITED: 'RATE_LIMITED',
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  UPSTREAM_REJECTED: 'UPSTREAM_REJECTED',
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_BAD_RESPONSE',
  SHUTTING_DOWN: 'SHUTTING_DOWN'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

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

/** The close reasons sent with each code; short, since a close frame holds at most 123 bytes. */
export const closeReason: Record<CloseCode, string> = {
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

/** An error with a protocol error code, raised by the upstream client and by request handling. */
export class BridgeError extends Error {
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'BridgeError'
    this.code = code
    this.details = details
  }
}
