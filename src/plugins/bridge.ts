import type { Channel } from '../config.js'
import type { Hub } from '../feed/hub.js'
import type { Sessions } from '../socket/sessions.js'
import type { WebhookInbox } from '../webhook/inbox.js'
import type { Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    bridge: Bridge
  }
}

export interface BridgeOptions {
  sessions: Sessions
  hub: Hub
  channels: Channel[]
  metrics: Metrics | undefined
  /** The window over which a drain closes the open sockets (DRAIN_MS). */
  drainMs: number
  /** Whether the store shared with other instances answers; a bridge on its own is always healthy. */
  healthy: () => boolean
}

/** What the routes, the tests and the process entry see of a bridge: `app.bridge`. */
export class Bridge {
  readonly sessions: Sessions
  readonly hub: Hub
  readonly channels: Channel[]
  readonly metrics: Metrics | undefined
  /** The port of the separate metrics listener, when METRICS_PORT is set. */
  metricsPort: number | undefined
  /** The webhook receiver, when WEBHOOK_SECRET or a channel's webhookSecret is set. */
  inbox: WebhookInbox | undefined
  private readonly drainMs: number
  private readonly healthy: () => boolean
  private accepting = false

  constructor (o: BridgeOptions) {
    this.sessions = o.sessions
    this.hub = o.hub
    this.channels = o.channels
    this.metrics = o.metrics
    this.drainMs = o.drainMs
    this.healthy = o.healthy
  }

  /**
   * Whether the bridge takes new sockets: from start-up until shutdown, and
   * in a cluster only while Redis answers, so that balancers send new sockets
   * elsewhere while it is down.
   */
  get ready (): boolean { return this.accepting && this.healthy() }

  /** Start-up is done: take sockets. */
  accept (): void { this.accepting = true }

  /** Shutdown begins: take no more sockets. */
  refuse (): void { this.accepting = false }

  /** Stops taking sockets and closes the open ones over DRAIN_MS; then close the app. */
  async drain (): Promise<void> {
    this.refuse()
    await this.sessions.drain(this.drainMs, 1000)
  }
}
