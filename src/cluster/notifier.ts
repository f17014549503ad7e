import type { RedisClient } from './redis.js'

type Listener = (message: string) => void

export interface Watch {
  next: (ms: number) => Promise<void>
  close: () => void
}

/**
 * Redis pub/sub on one connection of its own, shared by every feed, result
 * and lane of this instance. Messages are hints ("look again"), never data:
 * one lost while Redis reconnects costs a moment, since each listener also
 * looks again after a reconnect (`onReconnect`) and on its own schedule.
 */
export class Notifier {
  private readonly sub: RedisClient
  private readonly listeners = new Map<string, Set<Listener>>()
  private readonly reconnected: Array<() => void> = []
  private connectedOnce = false

  constructor (sub: RedisClient) {
    this.sub = sub
    sub.on('message', (channel: string, message: string) => {
      for (const fn of this.listeners.get(channel) ?? []) fn(message)
    })
    sub.on('ready', () => {
      // Subscriptions that failed while Redis was away are made again here.
      if (this.listeners.size > 0) this.sub.subscribe(...this.listeners.keys()).catch(() => {})
      if (this.connectedOnce) for (const fn of this.reconnected) fn()
      this.connectedOnce = true
    })
  }

  /** Subscribes; resolves once Redis confirmed it (or failed: the next reconnect subscribes again). */
  async listen (channel: string, fn: Listener): Promise<void> {
    let set = this.listeners.get(channel)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(channel, set)
      set.add(fn)
      await this.sub.subscribe(channel).catch(() => {})
      return
    }
    set.add(fn)
  }

  unlisten (channel: string, fn: Listener): void {
    const set = this.listeners.get(channel)
    if (set === undefined || !set.delete(fn) || set.size > 0) return
    this.listeners.delete(channel)
    this.sub.unsubscribe(channel).catch(() => {})
  }

  /** Called after the connection came back: messages may have been missed. */
  onReconnect (fn: () => void): void { this.reconnected.push(fn) }

  /**
   * Watches a channel: `next(ms)` resolves at the first message since the
   * previous `next` (or since the watch began), or after `ms`. Watch before
   * checking the state the messages announce, so none falls in between.
   */
  async watch (channel: string): Promise<Watch> {
    let signalled = false
    let wake: (() => void) | undefined
    const fn: Listener = () => {
      signalled = true
      wake?.()
    }
    await this.listen(channel, fn)
    return {
      next: async (ms: number) => {
        if (!signalled) {
          let timer: NodeJS.Timeout | undefined
          await new Promise<void>((resolve) => {
            wake = resolve
            timer = setTimeout(resolve, ms)
          })
          clearTimeout(timer)
          wake = undefined
        }
        signalled = false
      },
      close: () => { this.unlisten(channel, fn) }
    }
  }
}
