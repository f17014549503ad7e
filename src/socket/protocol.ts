import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'

/** The WebSocket subprotocol of protocol v1. */
export { SUBPROTOCOL } from '@chatapi-bridge/client'

/** Deepest JSON nesting accepted in a client frame (the upstream gets what we forward). */
export const MAX_JSON_DEPTH = 32

/** The longest cursor a client may give back (protocol v1: at most 200 characters). */
export const MAX_CURSOR_CHARS = 200

const Id = Type.String({ minLength: 1, maxLength: 64 })
const QuestionId = Type.String({ minLength: 1, maxLength: 128 })
const Status = Type.String({ minLength: 1, maxLength: 32 })
const Cid = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:~-]+$' })
const EpochMs = Type.Integer({ minimum: 0 })
const Credential = Type.String({ minLength: 1, maxLength: 8192 })

export const HelloFrame = Type.Object({
  type: Type.Literal('hello'),
  auth: Type.Optional(Credential),
  cid: Type.Optional(Cid),
  resume: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_CURSOR_CHARS })),
  all: Type.Optional(Type.Boolean())
})
export type HelloFrame = Static<typeof HelloFrame>

/**
 * A fresh credential for the open socket, sent before the one of its hello
 * expires. Answered by a `result` like a request, but handled by the
 * session: it never goes upstream, and its result is not cached by id.
 */
export const AuthFrame = Type.Object({ type: Type.Literal('auth'), id: Id, auth: Credential })
export type AuthFrame = Static<typeof AuthFrame>

const Message = {
  query: Type.Optional(Type.String({ minLength: 1, maxLength: 50_000 })),
  event: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  data: Type.Optional(Type.Unknown())
}

/** Request frames by type; each carries a client-chosen `id`. */
export const RequestFrames = {
  send: Type.Object({ type: Type.Literal('send'), id: Id, ...Message }),
  sendAsync: Type.Object({ type: Type.Literal('sendAsync'), id: Id, ...Message }),
  history: Type.Object({
    type: Type.Literal('history'),
    id: Id,
    from: Type.Optional(EpochMs),
    to: Type.Optional(EpochMs),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
  }),
  getState: Type.Object({ type: Type.Literal('getState'), id: Id }),
  setState: Type.Object({ type: Type.Literal('setState'), id: Id, state: Type.Unknown() }),
  getStatus: Type.Object({ type: Type.Literal('getStatus'), id: Id, questionId: QuestionId }),
  setStatus: Type.Object({ type: Type.Literal('setStatus'), id: Id, questionId: QuestionId, status: Status }),
  setStatuses: Type.Object({
    type: Type.Literal('setStatuses'),
    id: Id,
    statuses: Type.Array(Type.Object({ questionId: QuestionId, status: Status }), { minItems: 1, maxItems: 1000 })
  }),
  unreadCount: Type.Object({ type: Type.Literal('unreadCount'), id: Id })
} as const

export type RequestType = keyof typeof RequestFrames
export type RequestFrame = { [K in RequestType]: Static<(typeof RequestFrames)[K]> }[RequestType]
export type RequestOf<K extends RequestType> = Static<(typeof RequestFrames)[K]>

const compiled = new Map<string, TypeCheck<TSchema>>()
compiled.set('hello', TypeCompiler.Compile(HelloFrame))
compiled.set('auth', TypeCompiler.Compile(AuthFrame))
for (const [type, schema] of Object.entries(RequestFrames)) compiled.set(type, TypeCompiler.Compile(schema))

export function isRequestType (type: string): type is RequestType {
  return Object.hasOwn(RequestFrames, type)
}

/**
 * Checks a parsed frame against the schema of its type and returns null when
 * it is valid, or a message naming the first wrong field.
 */
export function checkFrame (type: string, frame: unknown): string | null {
  const check = compiled.get(type)
  if (check === undefined) return `unknown type "${type}"`
  if (check.Check(frame)) return null
  const first = check.Errors(frame).First()
  if (first === undefined) return 'invalid frame'
  const field = first.path === '' ? 'frame' : first.path.slice(1).replaceAll('/', '.')
  return `${field}: ${first.message}`
}

/** Depth of a parsed JSON value, counted without recursion so a hostile frame cannot overflow the stack. */
export function jsonDepth (value: unknown, limit: number): number {
  let max = 0
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number]
    if (typeof v !== 'object' || v === null) continue
    if (d > max) max = d
    if (max > limit) return max
    for (const child of Object.values(v)) stack.push([child, d + 1])
  }
  return max
}

/**
 * Frames the server sends: the client SDK's definitions are the one source,
 * so that what the bridge sends and what its client reads cannot drift apart.
 */
export type { AuthResult, ErrorFrame, EventFrame, HeartbeatFrame, ResultError, ResultFrame, ServerFrame, UpstreamElement, WelcomeFrame } from '@chatapi-bridge/client'
