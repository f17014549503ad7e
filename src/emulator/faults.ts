import { isRouteName } from './paths.js'
import type { RouteName } from './types.js'

/**
 * Faults the bridge's tests arm to see it survive a misbehaving upstream. This
 * file keeps the armed list; fault-injector.ts acts them out on requests.
 */
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

export class Faults implements FaultController {
  #armed: Armed[] = []

  get pending (): number {
    return this.#armed.length
  }

  add (fault: Fault): void {
    if (!(FAULT_KINDS as readonly string[]).includes(fault.kind)) throw new TypeError(`unknown fault kind: ${String(fault.kind)}`)
    const route = fault.route ?? '*'
    if (route !== '*' && !isRouteName(route)) throw new TypeError(`unknown route: ${String(route)}`)
    const count = fault.count ?? 1
    if (!(count > 0)) throw new TypeError('count must be more than 0')
    this.#armed.push({ fault: { ...fault, route }, left: count })
  }

  clear (): void {
    this.#armed = []
  }

  /** The first armed fault that matches a request of `route`, counted down by one. */
  take (route: RouteName): Fault | undefined {
    const index = this.#armed.findIndex(({ fault }) =>
      (fault.route === '*' || fault.route === route) && (route === 'events' || !EVENTS_ONLY.has(fault.kind)))
    const armed = this.#armed[index]
    if (armed === undefined) return undefined
    if (--armed.left <= 0) this.#armed.splice(index, 1)
    return armed.fault
  }
}
