import type { RedisClient } from './redis.js'

export interface HealthLog {
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
}

/** How long after Redis became available a failed command is checked with a ping before it counts. */
const RECOVERY_GRACE_MS = 2000

/**
 * Whether Redis answers: every connection is ready and the last command did
 * not fail. Told of each command's outcome by the code that runs it, so a
 * slow Redis (timeouts) counts as down as well as a lost connection. Logs one
 * line when trouble starts and one when it ends.
 */
export class RedisHealth {
  private readonly clients: RedisClient[]
  private readonly log: HealthLog
  private readonly listeners: Array<(up: boolean) => void> = []
  private failing = false
  private lastError: unknown
  private state = false
  private downSince: number | undefined = Date.now()
  private closed = false
  private readonly probe: NodeJS.Timeout
  /** When Redis last became available, and whether a ping is deciding on a failure seen soon after. */
  private upAt = 0
  private confirming = false
  /** Times Redis became unavailable since start. */
  outages = 0

  constructor (clients: RedisClient[], log: HealthLog) {
    this.clients = clients
    this.log = log
    for (const c of clients) {
      c.on('ready', () => {
        this.failing = false
        this.update()
      })
      c.on('close', () => { this.update() })
      c.on('end', () => { this.update() })
      c.on('reconnecting', () => { this.update() })
      // ioredis reports every failed reconnect here; the first of a streak is logged by update().
      c.on('error', (err: unknown) => { this.lastError = err })
    }
    // While down, a ping now and then finds out that a slow Redis answers again, even on an idle instance.
    const first = clients[0] as RedisClient
    this.probe = setInterval(() => {
      if (this.state || first.status !== 'ready') return
      first.ping().then(() => { this.ok() }, (err: unknown) => { this.failed(err) })
    }, 1000)
    this.probe.unref()
  }

  get up (): boolean { return this.state }

  /** The last error seen, as text. */
  get error (): string {
    const err = this.lastError
    return err instanceof Error ? err.message : err === undefined ? 'connection lost' : String(err)
  }

  /** Called with the new state whenever it changes. */
  onChange (fn: (up: boolean) => void): void { this.listeners.push(fn) }

  /** The connections are being closed on purpose: no more news. */
  close (): void {
    this.closed = true
    clearInterval(this.probe)
  }

  ok (): void {
    if (!this.failing) return
    this.failing = false
    this.update()
  }

  failed (err: unknown): void {
    this.lastError = err
    if (this.failing || this.confirming) return
    // Right after a recovery, a command sent before it may still fail (cut with the old connection, or timed
    // out while Redis was away): a ping on the new connections decides whether Redis is down again.
    if (this.state && Date.now() - this.upAt < RECOVERY_GRACE_MS) {
      this.confirming = true
      ;(this.clients[0] as RedisClient).ping().then(() => { this.confirming = false }, (e: unknown) => {
        this.confirming = false
        this.fail(e)
      })
      return
    }
    this.fail(err)
  }

  private fail (err: unknown): void {
    this.lastError = err
    if (this.failing) return
    this.failing = true
    this.update()
  }

  private update (): void {
    if (this.closed) return
    const up = !this.failing && this.clients.every((c) => c.status === 'ready')
    if (up === this.state) return
    this.state = up
    if (up) {
      this.upAt = Date.now()
      const downMs = this.downSince === undefined ? 0 : Date.now() - this.downSince
      this.downSince = undefined
      this.log.info({ downMs }, 'Redis is available')
    } else {
      this.downSince = Date.now()
      this.outages++
      this.log.warn({ error: this.error }, 'Redis is unavailable: open sockets are kept, new ones are refused until it is back')
    }
    for (const fn of this.listeners) fn(up)
  }
}
