/**
 * A small typed event emitter, so that the client runs in a browser without
 * Node's `events`. Each event has one payload. A listener that throws does
 * not stop the others; its error goes to `onListenerError`.
 */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  /** Adds a listener and returns a function that removes it. */
  on<K extends keyof Events> (name: K, fn: (payload: Events[K]) => void): () => void {
    let set = this.listeners.get(name)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(name, set)
    }
    set.add(fn as (payload: never) => void)
    return () => { this.off(name, fn) }
  }

  /** Like `on`, for the next event only. */
  once<K extends keyof Events> (name: K, fn: (payload: Events[K]) => void): () => void {
    const off = this.on(name, (payload) => {
      off()
      fn(payload)
    })
    return off
  }

  off<K extends keyof Events> (name: K, fn: (payload: Events[K]) => void): void {
    this.listeners.get(name)?.delete(fn as (payload: never) => void)
  }

  protected emit<K extends keyof Events> (name: K, payload: Events[K]): void {
    const set = this.listeners.get(name)
    if (set === undefined) return
    for (const fn of [...set]) {
      try {
        (fn as (payload: Events[K]) => void)(payload)
      } catch (err) {
        this.onListenerError(err, String(name))
      }
    }
  }

  protected onListenerError (_err: unknown, _event: string): void {}
}
