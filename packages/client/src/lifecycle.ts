import type { Clock } from './clock.js'
import type { ClientEnvironment, EnvironmentChange } from './environment.js'

/** What to do with the socket while the app is in the background: keep it, or close it after a grace period. */
export type BackgroundPolicy = 'stay' | 'close'

/** What the lifecycle asks of the connection it serves; each does nothing in a state where it means nothing. */
export interface LifecycleLink {
  /** While waiting to reconnect: try now, with the backoff started over. */
  wake: (reason: string) => void
  /** While waiting to reconnect: no more tries until `wake` (a try under way is left to end). */
  hold: (reason: string) => void
  /** Closes the socket, or stops the wait for one, keeping the client: it reconnects and resumes at `wake`. */
  park: (reason: string) => void
  /** While open: proves the socket still lives (a ping, answered within a heartbeat). */
  probe: () => void
}

/**
 * iOS suspends an app a few seconds after it leaves the foreground, and its
 * socket with it. A shorter absence (a glance at another tab) cannot have
 * frozen the socket, and the watchdog covers it anyway.
 */
const PROBE_AFTER_HIDDEN_MS = 5_000

/**
 * How the client lives with the device: it tries at once when the network
 * comes back or the app comes to the foreground, does not retry while the
 * device is offline (no storm of tries in airplane mode), checks the socket
 * after a long time in the background, and with `background: 'close'` closes
 * the socket after a grace period in the background and resumes at the
 * foreground. It listens only while the client is not closed.
 */
export class Lifecycle {
  private readonly environment: ClientEnvironment
  private readonly policy: BackgroundPolicy
  private readonly graceMs: number
  private readonly clock: Clock
  private readonly link: LifecycleLink
  private unwatch: (() => void) | undefined
  private online = true
  /** When the app went to the background, by the clock; undefined while it is in front. */
  private hiddenSince: number | undefined
  private graceTimer: unknown
  /** The socket was closed for the background: nothing until the foreground. */
  private parked = false

  constructor (options: { environment: ClientEnvironment, policy: BackgroundPolicy, graceMs: number, clock: Clock, link: LifecycleLink }) {
    this.environment = options.environment
    this.policy = options.policy
    this.graceMs = options.graceMs
    this.clock = options.clock
    this.link = options.link
  }

  /** Why the client must not try to reconnect now, or undefined when it may. */
  held (): string | undefined {
    if (!this.online) return 'waiting for the network'
    if (this.parked) return 'waiting for the foreground'
    return undefined
  }

  /** The client starts connecting: listen, and take the device as it is now. */
  start (): void {
    if (this.unwatch !== undefined) return
    this.online = this.environment.isOnline()
    this.unwatch = this.environment.watch((change) => { this.on(change) })
    if (!this.environment.isVisible()) this.on('hidden')
  }

  /** The client is closed: no listener, no timer is left behind. */
  stop (): void {
    this.unwatch?.()
    this.unwatch = undefined
    this.cancelGrace()
    this.hiddenSince = undefined
    this.parked = false
  }

  private on (change: EnvironmentChange): void {
    switch (change) {
      case 'online':
        this.online = true
        if (this.held() === undefined) this.link.wake('the network is back')
        // An `online` while open mostly means another network (Wi-Fi to cellular): the socket may be on the old one.
        this.link.probe()
        break
      case 'offline':
        // While open, the watchdog or the close notices; only the retries are pointless.
        this.online = false
        this.link.hold('the device is offline')
        break
      case 'hidden':
        if (this.hiddenSince !== undefined) return
        this.hiddenSince = this.clock.now()
        if (this.policy === 'close') this.graceTimer = this.clock.setTimeout(() => { this.sleep() }, this.graceMs)
        break
      case 'visible':
        this.foreground()
        break
    }
  }

  private sleep (): void {
    this.graceTimer = undefined
    this.parked = true
    this.link.park(`closed after ${this.graceMs} ms in the background`)
  }

  private foreground (): void {
    const since = this.hiddenSince
    if (since === undefined) return
    this.hiddenSince = undefined
    this.cancelGrace()
    this.parked = false
    if (this.held() === undefined) this.link.wake('back in the foreground')
    if (this.clock.now() - since >= PROBE_AFTER_HIDDEN_MS) this.link.probe()
  }

  private cancelGrace (): void {
    if (this.graceTimer !== undefined) this.clock.clearTimeout(this.graceTimer)
    this.graceTimer = undefined
  }
}
