export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StateChange {
  state: ConnectionState
  previous: ConnectionState
  /** The close code of the socket whose end caused the change, if one did. */
  code?: number
  reason?: string
  /** With `reconnecting` (announced again before every try): how long the client waits before it. */
  delayMs?: number
}

/**
 * The only changes of state there are; anything else is a bug. `reconnecting`
 * is entered again before every new try, so that each wait is announced.
 */
const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  closed: ['connecting'],
  connecting: ['open', 'reconnecting', 'closed'],
  open: ['reconnecting', 'closed'],
  reconnecting: ['reconnecting', 'open', 'closed']
}

/**
 * The state of a client's connection: the one field that holds it, and
 * `to`, the one place that changes it, checks the change against the table
 * and announces it.
 */
export class ConnectionStateMachine {
  private current: ConnectionState = 'closed'
  private readonly announce: (change: StateChange) => void

  constructor (announce: (change: StateChange) => void) {
    this.announce = announce
  }

  get state (): ConnectionState { return this.current }

  /** A method, not a property read, so that the compiler does not narrow the state across listener calls. */
  is (state: ConnectionState): boolean {
    return this.current === state
  }

  /** Moves to `to` and announces it; asking for the state it is in, where the table has no such change, does nothing. */
  to (to: ConnectionState, info: Omit<StateChange, 'state' | 'previous'> = {}): void {
    const from = this.current
    if (!TRANSITIONS[from].includes(to)) {
      if (from === to) return
      /* c8 ignore next 2 -- a guard against a bug in the client: no code path asks for another change */
      throw new Error(`no transition from ${from} to ${to}`)
    }
    this.current = to
    this.announce({ state: to, previous: from, ...info })
  }
}
