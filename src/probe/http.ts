import { Agent, request } from 'undici'
import { maskToken, tokenPath } from '../upstream/json.js'
import { CALL_TIMEOUT_MS } from './limits.js'

export interface ProbeCall {
  method: 'GET' | 'POST'
  /** Below `{url}/{token}`, starting with '' or '/'. */
  path: string
  query?: Record<string, string | number | boolean | undefined>
  body?: unknown
  timeoutMs?: number
  /** Another token in the path (the bad-token check); the real one is still masked everywhere. */
  token?: string
}

/** A server's answer, whatever its status. */
export interface Answer {
  kind: 'answer'
  status: number
  contentType: string
  text: string
  /** The parsed body when it is JSON, else undefined. */
  json: unknown
  /** Epoch ms of the HTTP Date header, when there is one. */
  date: number | undefined
  /** Our clock when the request left and when its answer was read. */
  sentAt: number
  receivedAt: number
}

/** No answer: the call's time ran out, the network failed, or the probe's budget is spent. */
export interface NoAnswer {
  kind: 'timeout' | 'failed' | 'over-budget'
  /** Token masked. */
  reason: string
  sentAt: number
  receivedAt: number
}

export type Outcome = Answer | NoAnswer

export interface ProbeHttpOptions {
  url: string
  token: string
  maxRequests: number
  /** Epoch ms past which no request is started and every one in flight is ended. */
  deadline: number
}

/**
 * The probe's only door to the upstream. It counts requests against the
 * budget, gives each a timeout within the deadline, reads every body, and
 * masks the token (which is in every URL path) in whatever it reports.
 */
export class ProbeHttp {
  private readonly o: ProbeHttpOptions
  private readonly base: string
  // Its own agent, so that close() leaves no keep-alive socket holding the process.
  private readonly agent = new Agent({ keepAliveTimeout: 2000, connect: { timeout: CALL_TIMEOUT_MS } })
  private count = 0

  constructor (options: ProbeHttpOptions) {
    this.o = options
    this.base = options.url.replace(/\/+$/, '')
  }

  get requests (): number {
    return this.count
  }

  mask (text: string): string {
    return maskToken(text, this.o.token)
  }

  async call (c: ProbeCall): Promise<Outcome> {
    const sentAt = Date.now()
    const timeoutMs = Math.min(c.timeoutMs ?? CALL_TIMEOUT_MS, this.o.deadline - sentAt)
    if (this.count >= this.o.maxRequests || timeoutMs <= 0) {
      return { kind: 'over-budget', reason: 'the probe has spent its requests or its time', sentAt, receivedAt: sentAt }
    }
    this.count++
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      const res = await request(this.urlOf(c), {
        method: c.method,
        dispatcher: this.agent,
        signal,
        headers: c.body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        body: c.body === undefined ? undefined : JSON.stringify(c.body)
      })
      const text = await res.body.text()
      const contentType = String(res.headers['content-type'] ?? '')
      return { kind: 'answer', status: res.statusCode, contentType, text, json: jsonOf(text), date: dateOf(res.headers.date), sentAt, receivedAt: Date.now() }
    } catch (err) {
      const kind = signal.aborted ? 'timeout' : 'failed'
      const reason = kind === 'timeout' ? `no answer within ${timeoutMs} ms` : this.mask(describe(err))
      return { kind, reason, sentAt, receivedAt: Date.now() }
    }
  }

  /** Ends every socket; a poll the probe gave up on is ended with it. */
  async close (): Promise<void> {
    await this.agent.destroy()
  }

  private urlOf (c: ProbeCall): string {
    let url = `${this.base}/${tokenPath(c.token ?? this.o.token)}${c.path}`
    const query = new URLSearchParams()
    for (const [k, v] of Object.entries(c.query ?? {})) if (v !== undefined) query.set(k, String(v))
    if (query.size > 0) url += '?' + query.toString()
    return url
  }
}

/** undici's message and its cause's (fetch-style errors keep the useful part there). */
function describe (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
  const code = (err as { code?: unknown }).code
  return `${err.message}${cause}${typeof code === 'string' ? ` (${code})` : ''}`
}

function jsonOf (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function dateOf (value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined) return undefined
  const ms = Date.parse(text)
  return Number.isFinite(ms) ? ms : undefined
}
