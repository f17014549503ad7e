import { Agent, request } from 'undici'
import { TimerSet } from './timekeeping.js'

/** The documented number of retries after a failed delivery. */
const RETRIES = 3
/** An attempt that takes longer than this counts as failed. */
const ATTEMPT_TIMEOUT_MS = 10_000

export interface WebhookLog {
  warn(details: object, message: string): void
}

/**
 * Posts payloads (JSON arrays) to the channel's webhook. A network error or a
 * non-2xx answer is retried three times, waiting base, 2×base, 4×base. It
 * never throws; close() drops what is pending and aborts what is in flight.
 */
export class WebhookSender {
  private target: string | undefined
  private readonly retryDelayMs: number
  private readonly log: WebhookLog
  private readonly timers = new TimerSet()
  private readonly inFlight = new Set<AbortController>()
  private readonly agent = new Agent({ headersTimeout: ATTEMPT_TIMEOUT_MS, bodyTimeout: ATTEMPT_TIMEOUT_MS })
  private closed = false

  constructor (url: string | undefined, retryDelayMs: number, log: WebhookLog) {
    this.target = url
    this.retryDelayMs = retryDelayMs
    this.log = log
  }

  set url (url: string | undefined) {
    this.target = url
  }

  /** Delivers in the background to the URL set now; without a URL the payload is dropped. */
  post (payload: unknown[]): void {
    const url = this.target
    if (url === undefined || this.closed) return
    void this.attempt(url, JSON.stringify(payload), 0)
  }

  async close (): Promise<void> {
    this.closed = true
    this.timers.close()
    for (const controller of this.inFlight) controller.abort()
    await this.agent.destroy()
  }

  private async attempt (url: string, body: string, retry: number): Promise<void> {
    const failure = await this.deliver(url, body)
    if (failure === undefined || this.closed) return
    if (retry >= RETRIES) {
      this.log.warn({ url, failure }, 'webhook delivery given up')
      return
    }
    this.timers.after(this.retryDelayMs * 2 ** retry, () => void this.attempt(url, body, retry + 1))
  }

  /** Resolves to undefined on success, or to why it failed. */
  private async deliver (url: string, body: string): Promise<string | undefined> {
    const controller = new AbortController()
    this.inFlight.add(controller)
    try {
      const res = await request(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        signal: controller.signal,
        dispatcher: this.agent
      })
      await res.body.dump()
      return res.statusCode >= 200 && res.statusCode < 300 ? undefined : `status ${res.statusCode}`
    } catch (err) {
      return err instanceof Error ? err.message : String(err)
    } finally {
      this.inFlight.delete(controller)
    }
  }
}
