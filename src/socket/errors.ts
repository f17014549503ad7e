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
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** The credential of an `auth` frame does not verify, has expired, or names another client than the socket's. */
  BAD_CREDENTIAL: 'BAD_CREDENTIAL'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** The close codes and the reasons sent with them are defined by the client SDK, next to what a client does after each. */
export { CloseCode, closeReason } from '@chatapi-bridge/client'

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
