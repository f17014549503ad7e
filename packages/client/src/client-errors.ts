import type { ResultError } from './frames.js'

/**
 * Codes of failures the client makes up itself, next to the protocol's
 * (BAD_REQUEST, RATE_LIMITED, UPSTREAM_TIMEOUT, …) that come from the bridge.
 */
export const ClientErrorCode = {
  /** No result within `requestTimeoutMs`. */
  TIMEOUT: 'TIMEOUT',
  /** The client was closed, by `close()` or by a close code that forbids reconnecting. */
  CLOSED: 'CLOSED'
} as const

/** A request that failed: `code` says how, as a protocol error code or one of ClientErrorCode. */
export class BridgeRequestError extends Error {
  readonly code: string
  /** The upstream's HTTP status, for UPSTREAM_REJECTED. */
  readonly status: number | undefined
  /** The upstream's own error, for UPSTREAM_REJECTED. */
  readonly upstreamError: unknown
  /** The close code that ended the client, for CLOSED. */
  readonly closeCode: number | undefined

  constructor (code: string, message: string, details: { status?: number, upstreamError?: unknown, closeCode?: number } = {}) {
    super(message)
    this.name = 'BridgeRequestError'
    this.code = code
    this.status = details.status
    this.upstreamError = details.upstreamError
    this.closeCode = details.closeCode
  }

  static fromResult (error: ResultError): BridgeRequestError {
    const details: { status?: number, upstreamError?: unknown } = { upstreamError: error.upstreamError }
    if (typeof error.status === 'number') details.status = error.status
    return new BridgeRequestError(String(error.code), String(error.message), details)
  }
}
