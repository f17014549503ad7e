import type { FastifyError, FastifyInstance } from 'fastify'

/**
 * Every error code the emulator answers with, in the platform's shape
 * `{ "error": "short.code", "message": "…" }`.
 */
export const ErrorCode = {
  /** Unknown channel token. */
  UNAUTHORIZED: 'channel.unauthorized',
  /** Unknown channel token, with 'not-found-token' (answered as text, the code is only named here). */
  CHANNEL_NOT_FOUND: 'channel.not.found',
  /** A held /events poll expired, with 'timeout-408'. */
  TIMEOUT: 'request.timeout',
  /** A body or query that does not fit the route: missing, wrong type or value. */
  INVALID: 'request.invalid',
  /** A body that is not JSON at all. */
  MALFORMED: 'request.malformed',
  /** A body of a content type other than JSON. */
  UNSUPPORTED: 'request.unsupported',
  TOO_LARGE: 'request.too.large',
  ROUTE_NOT_FOUND: 'route.not.found',
  MESSAGE_NOT_FOUND: 'message.not.found',
  /** An operator route named a client the channel has never seen (the emulator's own; not a Chat API code). */
  CLIENT_NOT_FOUND: 'client.not.found',
  /** Answered by a fault of kind 'status'. */
  FAULT: 'fault.injected',
  INTERNAL: 'internal.error'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

export interface ErrorBody {
  error: ErrorCode
  message: string
}

/**
 * An error a handler throws to answer with a given status and code. A `plain`
 * one answers its message alone as text/plain, as some platform errors come.
 */
export class EmulatorError extends Error {
  readonly status: number
  readonly code: ErrorCode
  readonly plain: boolean
  constructor (status: number, code: ErrorCode, message: string, options: { plain?: boolean } = {}) {
    super(message)
    this.name = 'EmulatorError'
    this.status = status
    this.code = code
    this.plain = options.plain ?? false
  }
}

export function errorBody (code: ErrorCode, message: string): ErrorBody {
  return { error: code, message }
}

/** Fastify's own errors that a client causes, with the code we answer them with. */
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ErrorCode.MALFORMED,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCode.MALFORMED,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ErrorCode.MALFORMED,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCode.UNSUPPORTED,
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCode.TOO_LARGE
}

/** Makes every error answer, Fastify's included, take the `{ error, message }` shape, but a `plain` EmulatorError. */
export function installErrorReplies (app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof EmulatorError) {
      if (err.plain) return reply.code(err.status).type('text/plain; charset=utf-8').send(err.message)
      return reply.code(err.status).send(errorBody(err.code, err.message))
    }
    if (err.validation !== undefined) return reply.code(400).send(errorBody(ErrorCode.INVALID, err.message))
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      // A 4xx we did not name (Fastify's, say a malformed URL) is still the client's fault.
      return reply.code(status).send(errorBody(fastifyCodes[err.code] ?? ErrorCode.INVALID, err.message))
    }
    request.log.error({ err }, 'emulator failure')
    return reply.code(500).send(errorBody(ErrorCode.INTERNAL, 'the emulator failed on this request'))
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(ErrorCode.ROUTE_NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]}`))
  })
}
