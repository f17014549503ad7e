import { BridgeError, ErrorCode } from '../socket/errors.js'

/**
 * Less time than this left, and a call is not sent: it could hardly be
 * answered in time, and the upstream might act on it all the same.
 */
export const MIN_CALL_MS = 50

/** A request whose time ran out before it went upstream: nothing was sent, so a resend may run it. */
export function notDispatched (where: string): BridgeError {
  return new BridgeError(ErrorCode.UPSTREAM_TIMEOUT, `the request waited ${where} until its time ran out and did not reach the upstream; it may be sent again`, { dispatched: false })
}

/** A request whose socket closed before its turn came: nobody waits for it, and a resend on a new socket may run it. */
export function abandoned (): BridgeError {
  return new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, 'the socket that sent the request closed before its turn; it did not reach the upstream', { dispatched: false })
}

/** Whether a failure is one of a request that never reached the upstream. */
export function wasNotDispatched (err: unknown): boolean {
  return err instanceof BridgeError && err.details?.dispatched === false
}

interface Waiter {
  deadline: number
  start: () => void
  fail: (err: BridgeError) => void
  timer: NodeJS.Timeout | undefined
  gone: boolean
}

/** One client's calls: how many run, and those waiting, oldest first (gone ones are skipped when reached). */
class ClientCalls {
  readonly key: string
  running = 0
  live = 0
  private waiting: Waiter[] = []
  private head = 0

  constructor (key: string) { this.key = key }

  push (w: Waiter): void {
    this.waiting.push(w)
    this.live++
  }

  /** The oldest waiter still there. */
  shift (): Waiter | undefined {
    while (this.head < this.waiting.length) {
      const w = this.waiting[this.head++] as Waiter
      if (this.head > 64 && this.head * 2 > this.waiting.length) {
        this.waiting = this.waiting.slice(this.head)
        this.head = 0
      }
      if (w.gone) continue
      this.live--
      return w
    }
    return undefined
  }

  drop (w: Waiter): void {
    w.gone = true
    this.live--
  }

  get idle (): boolean { return this.running === 0 && this.live === 0 }
}

export interface CallQueueStats { running: number, waiting: number, clients: number }

/**
 * Shares the upstream connections of one channel fairly between clients: at
 * most `slots` calls run at once, at most `perClient` of them one client's,
 * and a free slot goes to the next client in turn that has a call waiting
 * and room in its share. Each client's calls go in the order they came. So
 * one client's flood delays another client's call by one call at most, not
 * by the flood. A call still waiting when its deadline passes fails without
 * being sent.
 */
export class CallQueue {
  private readonly slots: number
  private readonly perClient: number
  private running = 0
  private readonly clients = new Map<string, ClientCalls>()
  /** Clients with a call waiting and room in their share, in turn order. */
  private readonly turns = new Set<ClientCalls>()
  private closed = false

  constructor (slots: number, perClient: number) {
    this.slots = Math.max(1, slots)
    this.perClient = Math.max(1, perClient)
  }

  /**
   * Resolves once the call may go upstream, with at least MIN_CALL_MS of
   * its time left, with the function that frees its slot (call it once the
   * call has settled); rejects when the deadline passes first.
   */
  async take (client: string, deadline: number): Promise<() => void> {
    if (this.closed) throw new BridgeError(ErrorCode.SHUTTING_DOWN, 'the bridge is shutting down')
    const c = this.clientOf(client)
    if (deadline - Date.now() < MIN_CALL_MS) {
      this.forget(c)
      throw notDispatched('for an upstream connection')
    }
    if (c.live === 0 && c.running < this.perClient && this.running < this.slots) {
      this.begin(c)
      return this.releaser(c)
    }
    return await new Promise((resolve, reject) => {
      const w: Waiter = { deadline, start: () => { resolve(this.releaser(c)) }, fail: reject, timer: undefined, gone: false }
      w.timer = setTimeout(() => { this.expire(c, w) }, deadline - Date.now() - MIN_CALL_MS)
      c.push(w)
      this.refresh(c)
      this.pump()
    })
  }

  /** Fails every waiting call; calls in flight finish. */
  close (): void {
    this.closed = true
    for (const c of this.clients.values()) {
      for (let w = c.shift(); w !== undefined; w = c.shift()) {
        clearTimeout(w.timer)
        w.fail(new BridgeError(ErrorCode.SHUTTING_DOWN, 'the bridge is shutting down'))
      }
      this.turns.delete(c)
      this.forget(c)
    }
  }

  stats (): CallQueueStats {
    let waiting = 0
    for (const c of this.clients.values()) waiting += c.live
    return { running: this.running, waiting, clients: this.clients.size }
  }

  /** Gives free slots to waiting calls, one client at a time in turn. */
  private pump (): void {
    while (this.running < this.slots) {
      const c = this.turns.values().next().value
      if (c === undefined) return
      this.turns.delete(c)
      const w = c.shift()
      if (w !== undefined) {
        clearTimeout(w.timer)
        // Its timer may be late: a call with too little time left is not sent.
        if (w.deadline - Date.now() < MIN_CALL_MS) {
          w.fail(notDispatched('for an upstream connection'))
        } else {
          this.begin(c)
          w.start()
        }
      }
      // Back at the end of the turn order, if it still has a call waiting and room.
      this.refresh(c)
      this.forget(c)
    }
  }

  private begin (c: ClientCalls): void {
    this.running++
    c.running++
  }

  private releaser (c: ClientCalls): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      this.running--
      c.running--
      this.refresh(c)
      this.forget(c)
      this.pump()
    }
  }

  private expire (c: ClientCalls, w: Waiter): void {
    if (w.gone) return
    c.drop(w)
    this.refresh(c)
    this.forget(c)
    w.fail(notDispatched('for an upstream connection'))
  }

  /** Keeps `turns` holding exactly the clients that have a call waiting and room in their share. */
  private refresh (c: ClientCalls): void {
    if (c.live > 0 && c.running < this.perClient) {
      if (!this.turns.has(c)) this.turns.add(c)
    } else {
      this.turns.delete(c)
    }
  }

  private clientOf (key: string): ClientCalls {
    let c = this.clients.get(key)
    if (c === undefined) {
      c = new ClientCalls(key)
      this.clients.set(key, c)
    }
    return c
  }

  private forget (c: ClientCalls): void {
    if (c.idle && this.clients.get(c.key) === c) this.clients.delete(c.key)
  }
}
