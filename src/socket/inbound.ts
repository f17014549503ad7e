import { checkFrame, jsonDepth, MAX_JSON_DEPTH, type RequestFrame } from './protocol.js'
import { isDotSegment } from '../upstream/json.js'

/** A text frame from a client, read: its type and body, or what is wrong with it (and its id, to answer). */
export type ReadFrame =
  | { type: string, frame: object }
  | { problem: string, id?: string | undefined }

/** Parses one text frame and checks its outer shape: a JSON object with a string type, not nested too deep. */
export function readFrame (text: string): ReadFrame {
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    return { problem: 'frame is not valid JSON' }
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return { problem: 'frame must be a JSON object' }
  const type = (frame as { type?: unknown }).type
  if (typeof type !== 'string') return { problem: 'frame has no string "type"' }
  if (jsonDepth(frame, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) return { problem: `frame is nested deeper than ${MAX_JSON_DEPTH} levels`, id: idOf(frame) }
  return { type, frame }
}

/** The answer to a frame of a type that is not in the protocol. */
export function unknownType (type: string): string {
  return `unknown type "${type.slice(0, 40)}"`
}

/** What is wrong with a request frame's fields, or undefined when it may go upstream. */
export function requestProblem (frame: RequestFrame): string | undefined {
  if ('clientId' in frame) return 'clientId comes from the session; leave it out of requests'
  const problem = checkFrame(frame.type, frame)
  if (problem !== null) return `${frame.type}: ${problem}`
  if ((frame.type === 'send' || frame.type === 'sendAsync') && (frame.query === undefined) === (frame.event === undefined)) {
    return `${frame.type}: give exactly one of "query" and "event"`
  }
  return pathFieldProblem(frame)
}

/** What is wrong with an `auth` frame's fields, or undefined when its credential may be checked. */
export function authProblem (frame: object): string | undefined {
  const problem = checkFrame('auth', frame)
  return problem === null ? undefined : `auth: ${problem}`
}

/**
 * The request fields that become an upstream path segment (see callFor):
 * `.` or `..` there would take the call to another path behind a normalising proxy.
 */
function pathFieldProblem (frame: RequestFrame): string | undefined {
  if ((frame.type === 'getStatus' || frame.type === 'setStatus') && isDotSegment(frame.questionId)) {
    return `${frame.type}: questionId must not be "." or ".."`
  }
  return undefined
}

/** A request id usable in an answer: a short non-empty string. */
export function idOf (frame: object): string | undefined {
  const id = (frame as { id?: unknown }).id
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : undefined
}
