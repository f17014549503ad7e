import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import { parseRetryAfter } from '../upstream/upstream-answers.js'

/** Header of the signature: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export const SIGNATURE_HEADER = 'x-chatapi-bridge-signature'
/** Header of the time of the attempt (epoch ms), signed with the body so that a receiver can refuse replays. */
export const TIMESTAMP_HEADER = 'x-chatapi-bridge-timestamp'

/** What one post came to: done, worth another try (after `retryAfterMs` if the hook said), or refused for good. */
export type PostOutcome =
  | { kind: 'posted' }
  | { kind: 'retry', why: string, retryAfterMs?: number | undefined }
  | { kind: 'refused', why: string }

export interface HookSenderOptions {
  url: string
  secret: string
  timeoutMs: number
}

/** The signature of one attempt: the timestamp is in the signed text, so a captured post cannot be replayed later with a fresh one. */
export function sign (secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/**
 * Posts signed JSON to the operator's hook, one attempt per call. It knows
 * HTTP and nothing of queues or retries: it only says whether another try
 * makes sense. The answer's body is never read (a hook owes us nothing but
 * its status), so it is dumped, which also caps what a hook can make us read.
 */
export class HookSender {
  private readonly o: HookSenderOptions
  // A pool of its own, so that a slow hook never takes connections from the upstream's, and close() ends it.
  private readonly agent = new Agent({ connections: 8, keepAliveTimeout: 10_000 })

  constructor (o: HookSenderOptions) { this.o = o }

  async post (body: string, signal: AbortSignal, now = Date.now()): Promise<PostOutcome> {
    const timestamp = String(now)
    try {
      const res = await request(this.o.url, {
        method: 'POST',
        dispatcher: this.agent,
        body,
        headers: {
          'content-type': 'application/json',
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: sign(this.o.secret, timestamp, body)
        },
        // The whole post, headers and answer, is bounded by the native timer of the signal alone. undici's own
        // timeouts run on coarse timers (ticks of about 500 ms, started a tick back): set to OFFLINE_HOOK_TIMEOUT_MS
        // they cut a post up to half a second early, and left at their 300 s they would cut a longer setting.
        headersTimeout: 0,
        bodyTimeout: 0,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.timeoutMs)])
      })
      await res.body.dump().catch(() => undefined)
      const status = res.statusCode
      if (status >= 200 && status < 300) return { kind: 'posted' }
      if (status === 429 || status >= 500) return { kind: 'retry', why: `HTTP ${status}`, retryAfterMs: parseRetryAfter(res.headers['retry-after']) }
      return { kind: 'refused', why: `HTTP ${status}` }
    } catch (err) {
      // A network error, a timeout, or our own close: the queue tells them apart by its signal.
      return { kind: 'retry', why: (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? 'timeout' : (err as { code?: string }).code ?? 'network error' }
    }
  }

  async close (): Promise<void> { await this.agent.close() }
}
