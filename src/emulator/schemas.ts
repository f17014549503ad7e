import { Type, type Static } from '@sinclair/typebox'
import { FAULT_KINDS } from './faults.js'
import { MESSAGE_STATUSES } from './message-status.js'

/**
 * Request shapes of every route. Query values stay strings (coercion is off)
 * and numbers are checked by pattern, so that `ts=abc` is a 400, not a 0.
 */

const EPOCH_MS = '^-?\\d+(\\.\\d+)?$'
const COUNT = '^\\d+$'

export const TokenParams = Type.Object({ token: Type.String() })
export const ClientParams = Type.Object({ token: Type.String(), clientId: Type.String() })
export const MessageParams = Type.Object({ token: Type.String(), clientId: Type.String(), questionId: Type.String() })

const turnFields = {
  clientId: Type.String({ minLength: 1 }),
  query: Type.Optional(Type.String()),
  event: Type.Optional(Type.String({ minLength: 1 })),
  cid: Type.Optional(Type.String())
}
export const TurnBody = Type.Object({ ...turnFields, data: Type.Optional(Type.Record(Type.String(), Type.Unknown())) })
export const TurnQuery = Type.Object(turnFields)
export type TurnBody = Static<typeof TurnBody>

export const EventsQuery = Type.Object({
  clientId: Type.String({ minLength: 1 }),
  cid: Type.Optional(Type.String()),
  ts: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  all: Type.Optional(Type.String())
})

export const HistoryQuery = Type.Object({
  from: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  to: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  limit: Type.Optional(Type.String({ pattern: COUNT }))
})

/** The history query of the 'entry-history' profile; `from` and `to` are then ignored. */
export const EntryHistoryQuery = Type.Object({
  fromTimestamp: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  toTimestamp: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  limit: Type.Optional(Type.String({ pattern: COUNT }))
})

export const StatusValue = Type.Union(MESSAGE_STATUSES.map(s => Type.Literal(s)))
export const StatusBody = Type.Object({ status: StatusValue })
export const StatusesBody = Type.Object({
  statuses: Type.Array(Type.Object({ questionId: Type.String(), status: StatusValue }))
})

/** Any JSON object; the state is stored as is. */
export const StateBody = Type.Object({}, { additionalProperties: true })

export const AgentReplyBody = Type.Object({ clientId: Type.String({ minLength: 1 }), text: Type.String() })
export const PublishBody = Type.Object({
  clientId: Type.String({ minLength: 1 }),
  type: Type.String({ minLength: 1 }),
  body: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})
export const CampaignBody = Type.Object({ clientIds: Type.Array(Type.String({ minLength: 1 })), text: Type.String() })

/** A fault as POST /operator/faults takes it; JSON has no Infinity, so count may be the string "Infinity". */
export const FaultBody = Type.Object({
  route: Type.Optional(Type.String()),
  kind: Type.Union(FAULT_KINDS.map(k => Type.Literal(k))),
  count: Type.Optional(Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Literal('Infinity')])),
  status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  retryAfter: Type.Optional(Type.Number({ minimum: 0 })),
  delayMs: Type.Optional(Type.Number({ minimum: 0 }))
})
