import { BridgeRequestError } from './client-errors.js'
import type { BridgeEvent, ResultFrame } from './frames.js'

/** A parsed frame with a string type, of protocol v1 or of a later version. */
export type RawFrame = Record<string, unknown> & { type: string }

/**
 * Reads what came on the socket: a JSON object with a string type, or the
 * error to report. The bridge is trusted no further than that; the frames
 * the client acts on are checked by the functions below.
 */
export function readFrame (data: unknown): RawFrame | Error {
  let frame: unknown
  try {
    frame = JSON.parse(typeof data === 'string' ? data : String(data))
  } catch {
    return new Error('the bridge sent a frame that is not JSON')
  }
  if (!isRecord(frame) || typeof frame.type !== 'string') return new Error('the bridge sent a frame with no type')
  return frame as RawFrame
}

/** An `event` frame as the client hands it out. */
export function readEvent (frame: RawFrame): BridgeEvent | Error {
  const inner = frame.event
  if (typeof frame.cursor !== 'string' || !isRecord(inner) || typeof inner.type !== 'string') {
    return new Error('the bridge sent a malformed event frame')
  }
  return { type: inner.type, event: isRecord(inner.event) ? inner.event : {}, cursor: frame.cursor }
}

export function readResult (frame: RawFrame): ResultFrame | Error {
  if (typeof frame.id !== 'string' || typeof frame.ok !== 'boolean' || (frame.ok === false && !isRecord(frame.error))) {
    return new Error('the bridge sent a malformed result frame')
  }
  return frame as unknown as ResultFrame
}

/** An `error` frame as the error it reports, and the request it names, if any. */
export function readError (frame: RawFrame): { id: string | undefined, error: BridgeRequestError } {
  const error = new BridgeRequestError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error from the bridge'))
  return { id: typeof frame.id === 'string' ? frame.id : undefined, error }
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
