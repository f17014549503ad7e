import type { FastifyRequest } from 'fastify'
import { routeNameOf } from './paths.js'
import type { RequestLog } from './request-log.js'

/**
 * Turns a Fastify request into a RequestRecord, once: from preValidation for
 * most requests, from onError for those that fail earlier (a body that is not
 * JSON never reaches preValidation but was still received).
 */
export class RequestRecorder {
  readonly #log: RequestLog
  readonly #seen = new WeakSet<FastifyRequest>()

  constructor (log: RequestLog) {
    this.#log = log
  }

  record (request: FastifyRequest): void {
    if (this.#seen.has(request)) return
    this.#seen.add(request)
    const params = (request.params ?? {}) as { token?: string, clientId?: string }
    const query = (request.query ?? {}) as Record<string, string>
    const body = request.body as { clientId?: unknown } | undefined
    const clientId = params.clientId ?? query.clientId ?? body?.clientId
    this.#log.add({
      method: request.method,
      path: request.url.split('?')[0] ?? '',
      route: routeNameOf(request.method, request.routeOptions.url),
      token: params.token ?? '',
      clientId: typeof clientId === 'string' ? clientId : undefined,
      query: { ...query },
      body: request.body,
      at: Date.now(),
      httpVersion: request.raw.httpVersion
    })
  }
}
