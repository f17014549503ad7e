import { ChannelStore } from './channel-store.js'
import { ConnectionCounter } from './connections.js'
import { Dialogue, Outreach } from './conversation.js'
import { EmulatorError, ErrorCode } from './emulator-error.js'
import type { UpstreamEvent } from './event-log.js'
import { FaultInjector, Faults } from './faults.js'
import { HeldPolls } from './long-poll.js'
import type { ProfileFlags } from './profiles.js'
import { RequestLog, type RequestRecord } from './request-log.js'
import { TimerSet, UpstreamClock } from './timekeeping.js'
import { WebhookSender, type WebhookLog } from './webhook-sender.js'

/** The emulator's options with every default filled in. */
export interface Settings {
  port: number
  host: string
  tokens: string[]
  holdMs: number
  webhookUrl: string | undefined
  webhookRetryDelayMs: number
  asyncDelayMs: number
  agentDelayMs: number
  clockOffsetMs: number
  lateStampMs: number
  flags: ProfileFlags
  http2: boolean
  http2MaxStreams: number
  logger: boolean | object
}

/**
 * The emulator without HTTP: its parts wired together. Routes and the
 * in-process API both call into it, so they behave the same.
 */
export class EmulatorCore {
  readonly tokens: ReadonlySet<string>
  readonly holdMs: number
  readonly flags: ProfileFlags
  readonly clock: UpstreamClock
  readonly polls = new HeldPolls()
  readonly store: ChannelStore
  readonly timers = new TimerSet()
  readonly webhook: WebhookSender
  readonly outreach: Outreach
  readonly dialogue: Dialogue
  readonly faults = new Faults()
  readonly injector = new FaultInjector(this.faults)
  readonly requests: RequestLog
  /** Filled by the HTTP face, which watches its server. */
  readonly connections = new ConnectionCounter()
  private shuttingDown = false

  constructor (settings: Settings, log: WebhookLog, onRecord: (record: RequestRecord) => void) {
    this.tokens = new Set(settings.tokens)
    this.holdMs = settings.holdMs
    this.flags = settings.flags
    this.clock = new UpstreamClock(settings.clockOffsetMs, settings.flags)
    this.store = new ChannelStore({ onAppend: (token, clientId) => this.polls.wake(token, clientId), clock: this.clock, flags: settings.flags })
    this.webhook = new WebhookSender(settings.webhookUrl, settings.webhookRetryDelayMs, log)
    const { store, clock, webhook, timers } = this
    this.outreach = new Outreach({ store, clock, webhook, timers, agentDelayMs: settings.agentDelayMs })
    const { asyncDelayMs, lateStampMs, flags } = settings
    this.dialogue = new Dialogue({ store, clock, webhook, timers, outreach: this.outreach, asyncDelayMs, lateStampMs, flags })
    this.requests = new RequestLog(onRecord)
  }

  get closing (): boolean {
    return this.shuttingDown
  }

  /**
   * Throws what the upstream answers for a token it does not know: a 401 in
   * the error shape, or with 'not-found-token' the platform adapter's 404 text.
   */
  checkToken (token: string): void {
    if (this.tokens.has(token)) return
    if (this.flags['not-found-token']) {
      throw new EmulatorError(404, ErrorCode.CHANNEL_NOT_FOUND, `ChannelChat config not found for token ${token} and channel CHATAPI`, { plain: true })
    }
    throw new EmulatorError(401, ErrorCode.UNAUTHORIZED, 'unknown channel token')
  }

  publish (token: string, clientId: string, type: string, body: Record<string, unknown> = {}): UpstreamEvent {
    return this.store.append(token, clientId, this.clock.now(), type, body)
  }

  /** Answers held polls, drops stalled requests and every pending timer and delivery. */
  async close (): Promise<void> {
    this.shuttingDown = true
    this.polls.endAll()
    this.injector.close()
    this.timers.close()
    await this.webhook.close()
  }
}
