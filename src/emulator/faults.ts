/**
 * Faults the bridge's tests arm to see it survive a misbehaving upstream:
 * the kinds, the armed list, and the injector that acts them out on requests.
 */
import http2 from 'node:http2'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, errorBody } from './emulator-error.js'
import type { UpstreamEvent } from './event-log.js'
import { isRouteName, type RouteName } from './route-table.js'

/** Every kind of fault, as Fault.kind and POST /operator/faults name it. */
export const FAULT_KINDS = [
  /** answer `status` (default 503) in the error shape, with Retry-After when `retryAfter` is set */
  'status',
  /** 502 with an HTML page, as a proxy in front of the upstream would */
  'html',
  /** 200 with a text body */
  'notJson',
  /** 200 with JSON of the wrong shape */
  'badShape',
  /** 200 with the right content-length and half the JSON, then the socket is destroyed */
  'truncated',
  /** 200 with a well-formed JSON body of 9 MB, more than a client should read */
  'huge',
  /** the socket is destroyed without an answer */
  'reset',
  /** no answer until the client aborts or the emulator closes */
  'hang',
  /** the normal answer after `delayMs` */
  'delay',
  /** /events only: each event twice */
  'duplicate',
  /** /events only: events newest first */
  'reorder'
] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface Fault {
  /** A route name or '*' (default): which requests the fault may hit. */
  route?: RouteName | '*'
  kind: FaultKind
  /** How many matching requests it hits; default 1, Infinity allowed. */
  count?: number
  status?: number
  /** Seconds, sent as Retry-After with kind 'status'. */
  retryAfter?: number
  delayMs?: number
}

export interface FaultController {
  /** Arms a fault for the next `count` matching requests; faults are taken in the order they were added. */
  add(fault: Fault): void
  /** Disarms every fault. */
  clear(): void
  /** How many faults are still armed. */
  readonly pending: number
}

/** Kinds that rewrite an otherwise normal /events answer, so they only ever match /events. */
const EVENTS_ONLY: ReadonlySet<FaultKind> = new Set(['duplicate', 'reorder'])

interface Armed {
  fault: Fault
  left: number
}

/** The armed list: faults in the order they were added, each with the requests it may still hit. */
export class Faults implements FaultController {
  private armed: Armed[] = []

  get pending (): number {
    return this.armed.length
  }

  add (fault: Fault): void {
    if (!(FAULT_KINDS as readonly string[]).includes(fault.kind)) throw new TypeError(`unknown fault kind: ${String(fault.kind)}`)
    const route = fault.route ?? '*'
    if (route !== '*' && !isRouteName(route)) throw new TypeError(`unknown route: ${String(route)}`)
    const count = fault.count ?? 1
    if (!(count > 0)) throw new TypeError('count must be more than 0')
    this.armed.push({ fault: { ...fault, route }, left: count })
  }

  clear (): void {
    this.armed = []
  }

  /** The first armed fault that matches a request of `route`, counted down by one. */
  take (route: RouteName): Fault | undefined {
    const index = this.armed.findIndex(({ fault }) =>
      (fault.route === '*' || fault.route === route) && (route === 'events' || !EVENTS_ONLY.has(fault.kind)))
    const armed = this.armed[index]
    if (armed === undefined) return undefined
    if (--armed.left <= 0) this.armed.splice(index, 1)
    return armed.fault
  }
}

const HTML_502 = '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n' +
  '<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n'

/** A request the injector holds back (hang, delay); close() destroys it. */
interface Stalled {
  reply: FastifyReply
  release(): void
}

/**
 * Acts out armed faults on Chat API requests, before their handler runs: a
 * faulted request changes nothing in the emulator's state, except 'delay',
 * 'duplicate' and 'reorder', which let it run and only change the answer.
 */
export class FaultInjector {
  private readonly faults: Faults
  private readonly rewrites = new WeakMap<FastifyRequest, FaultKind>()
  private readonly stalled = new Set<Stalled>()

  constructor (faults: Faults) {
    this.faults = faults
  }

  /** Applies the next armed fault, if any. Resolves when the request may go on, unless it was answered. */
  async apply (route: RouteName, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const fault = this.faults.take(route)
    if (fault === undefined) return
    switch (fault.kind) {
      case 'status': {
        const status = fault.status ?? 503
        if (fault.retryAfter !== undefined) reply.header('retry-after', String(fault.retryAfter))
        reply.code(status).send(errorBody(ErrorCode.FAULT, `fault injected: status ${status}`))
        return
      }
      case 'html':
        reply.code(502).type('text/html; charset=utf-8').send(HTML_502)
        return
      case 'notJson':
        reply.code(200).type('text/plain; charset=utf-8').send('OK, but not JSON')
        return
      case 'badShape':
        reply.code(200).send(route === 'events' ? { events: 'nope' } : [])
        return
      case 'truncated':
        return truncate(route, reply)
      case 'huge':
        reply.hijack()
        void writeHuge(reply.raw)
        return
      case 'reset':
        reply.hijack()
        cut(request.raw)
        return
      case 'hang':
        reply.hijack()
        return this.stall(reply, () => undefined)
      case 'delay':
        return this.delay(reply, fault.delayMs ?? 1000)
      case 'duplicate':
      case 'reorder':
        this.rewrites.set(request, fault.kind)
    }
  }

  /** The events of an /events answer, rewritten if a fault asked for it. */
  rewrite (request: FastifyRequest, events: UpstreamEvent[]): UpstreamEvent[] {
    const kind = this.rewrites.get(request)
    if (kind === 'duplicate') return events.flatMap((e) => [e, e])
    if (kind === 'reorder') return [...events].reverse()
    return events
  }

  /** Destroys every held-back request, so that close() need not wait for them. */
  close (): void {
    for (const stalled of [...this.stalled]) {
      stalled.release()
      cut(stalled.reply.raw)
    }
    this.stalled.clear()
  }

  private delay (reply: FastifyReply, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stalled.delete(stalled)
        resolve()
      }, ms)
      const stalled: Stalled = {
        reply,
        release: () => {
          clearTimeout(timer)
          // The socket is about to go; nothing may answer on it any more.
          reply.hijack()
          resolve()
        }
      }
      this.stalled.add(stalled)
    })
  }

  private stall (reply: FastifyReply, release: () => void): void {
    const stalled = { reply, release }
    this.stalled.add(stalled)
    reply.raw.once('close', () => this.stalled.delete(stalled))
  }
}

/** Headers promise the whole body; half of it comes, then the connection dies. */
function truncate (route: RouteName, reply: FastifyReply): void {
  const full = JSON.stringify(route === 'events'
    ? { events: [{ type: 'agentResponse', event: { timestamp: '2026-01-01T00:00:00.000', text: 'cut short' } }] }
    : { questionId: '00000000-0000-4000-8000-000000000000', data: { answer: 'cut short', replies: [] } })
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(full) })
  res.write(full.slice(0, full.length >> 1), () => { cut(res) })
}

/**
 * Ends one request the way a dying connection would: over HTTP/1.1 its
 * socket is destroyed; over HTTP/2 only its stream is reset (RST_STREAM),
 * since the session carries other clients' requests.
 */
function cut (raw: { socket: { destroy(): void } | null, stream?: unknown }): void {
  const stream = raw.stream as { close?: (code: number) => void } | undefined
  if (typeof stream?.close === 'function') stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
  else raw.socket?.destroy()
}

/**
 * Writes 9 MB of well-formed JSON in 64 KB pieces, waiting for the client
 * to take each (HTTP/2 flow control), and stops when the client goes.
 */
async function writeHuge (res: FastifyReply['raw']): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
  const piece = 'x'.repeat(64 * 1024)
  const pieces = ['{"events":[],"padding":"', ...Array<string>(9 * 16).fill(piece), '"}']
  for (const p of pieces) {
    if (res.destroyed) return
    if (!res.write(p)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
        res.on('drain', done)
        res.on('close', done)
      })
    }
  }
  res.end()
}
