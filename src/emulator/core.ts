import { UpstreamClock } from './clock.js'
import { ConnectionCounter } from './connection-stats.js'
import { Dialogue } from './dialogue.js'
import { EmulatorError, ErrorCode } from './errors.js'
import { FaultInjector } from './fault-injector.js'
import { Faults } from './faults.js'
import { HeldPolls } from './held-polls.js'
import { Outreach } from './outreach.js'
import { RequestLog } from './request-log.js'
import type { ProfileFlags, Settings } from './settings.js'
import { ChannelStore } from './store.js'
import { TimerSet } from './timer-set.js'
import type { RequestRecord, UpstreamEvent } from './types.js'
import { Webhook, type WebhookLog } from './webhook.js'

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
  readonly webhook: Webhook
  readonly outreach: Outreach
  readonly dialogue: Dialogue
  readonly faults = new Faults()
  readonly injector = new FaultInjector(this.faults)
  readonly requests: RequestLog
  /** Filled by the HTTP face, which watches its server. */
  readonly connections = new ConnectionCounter()
  #closing = false

  constructor (settings: Settings, log: WebhookLog, onRecord: (record: RequestRecord) => void) {
    this.tokens = new Set(settings.tokens)
    this.holdMs = settings.holdMs
    this.flags = settings.flags
    this.clock = new UpstreamClock(settings.clockOffsetMs, settings.flags)
    this.store = new ChannelStore({ onAppend: (token, clientId) => this.polls.wake(token, clientId), clock: this.clock, flags: settings.flags })
    this.webhook = new Webhook(settings.webhookUrl, settings.webhookRetryDelayMs, log)
    const { store, clock, webhook, timers } = this
    this.outreach = new Outreach({ store, clock, webhook, timers, agentDelayMs: settings.agentDelayMs })
    const { asyncDelayMs, lateStampMs, flags } = settings
    this.dialogue = new Dialogue({ store, clock, webhook, timers, outreach: this.outreach, asyncDelayMs, lateStampMs, flags })
    this.requests = new RequestLog(onRecord)
  }

  get closing (): boolean {
    return this.#closing
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
    this.#closing = true
    this.polls.endAll()
    this.injector.close()
    this.timers.close()
    await this.webhook.close()
  }
}
