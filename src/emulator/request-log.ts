/**
 * Every request the emulator receives, for the tests and benchmarks that
 * check what the bridge sent: the records, how they are taken from Fastify's
 * requests, and a count per route.
 */
import type { FastifyRequest } from 'fastify'
import { routeNameOf } from './route-table.js'

export interface RequestRecord {
  method: string
  path: string
  /** A RouteName, 'operator' for the operator routes, or 'notFound'. */
  route: string
  /** '' when the path has no token. */
  token: string
  clientId?: string
  query: Record<string, string>
  body: unknown
  /** Our clock (Date.now()), not the upstream's. */
  at: number
  /** '1.1' or '2.0'. */
  httpVersion: string
}

const LIMIT = 10_000

/** Every request received, the last 10,000 of them, with a count per route that is never trimmed. */
export class RequestLog {
  readonly records: RequestRecord[] = []
  readonly counts: Record<string, number> = {}
  private readonly onRecord: (record: RequestRecord) => void

  constructor (onRecord: (record: RequestRecord) => void) {
    this.onRecord = onRecord
  }

  add (record: RequestRecord): void {
    this.records.push(record)
    if (this.records.length > LIMIT) this.records.shift()
    this.counts[record.route] = (this.counts[record.route] ?? 0) + 1
    this.onRecord(record)
  }
}

/**
 * Turns a Fastify request into a RequestRecord, once: from preValidation for
 * most requests, from onError for those that fail earlier (a body that is not
 * JSON never reaches preValidation but was still received).
 */
export class RequestRecorder {
  private readonly log: RequestLog
  private readonly seen = new WeakSet<FastifyRequest>()

  constructor (log: RequestLog) {
    this.log = log
  }

  record (request: FastifyRequest): void {
    if (this.seen.has(request)) return
    this.seen.add(request)
    const params = (request.params ?? {}) as { token?: string, clientId?: string }
    const query = (request.query ?? {}) as Record<string, string>
    const body = request.body as { clientId?: unknown } | undefined
    const clientId = params.clientId ?? query.clientId ?? body?.clientId
    this.log.add({
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
