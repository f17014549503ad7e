/**
 * The public surface of the Chat API emulator. The bridge, its tests and the
 * benchmarks program against these types, so they change only on purpose.
 */
import type { FaultController } from './faults.js'
import type { ProfileName } from './profiles.js'

export interface EmulatorOptions {
  /** Port to listen on; 0 picks a free one. Default 0. */
  port?: number
  /** Default '127.0.0.1'. */
  host?: string
  /** Channel tokens accepted; any other token is answered with 401 (404 with 'not-found-token'). Default ['demo-token']. */
  tokens?: string[]
  /** How long /events holds a request that has nothing to return. Default 25000. */
  holdMs?: number
  /** Where async answers, campaigns, agent replies and bot timeouts are POSTed. */
  webhookUrl?: string
  /** Base delay between the three webhook retries; it doubles each time. Default 500. */
  webhookRetryDelayMs?: number
  /** Delay before an async answer is delivered. Default 50. */
  asyncDelayMs?: number
  /** Delay of the simulated agent's reply after a hand-over. Default 1500. */
  agentDelayMs?: number
  /** Added to every upstream timestamp, to play an upstream whose clock differs from ours. Default 0. */
  clockOffsetMs?: number
  /**
   * Behaviours of a live Chat API that public evidence allows, in place of
   * the emulator's defaults; they combine. See PROFILES. Default none.
   */
  profiles?: ProfileName[]
  /** With the 'late-stamps' profile: how long after its request a turn's botResponse is stored. Default 1000. */
  lateStampMs?: number
  /**
   * Speak cleartext HTTP/2 (h2c, prior knowledge) as well as HTTP/1.1 on the
   * same port, as an ingress with HTTP/2 turned on does. Default false.
   */
  http2?: boolean
  /** SETTINGS_MAX_CONCURRENT_STREAMS of each HTTP/2 session. Default 1000. */
  http2MaxStreams?: number
  /** Fastify's logger option. Default false. */
  logger?: boolean | object
}

/** Stable names of the Chat API routes, used by request records, stats and faults. */
export type RouteName =
  | 'send' | 'sendGet' | 'sendAsync' | 'events' | 'history'
  | 'getState' | 'setState' | 'getStatus' | 'setStatus' | 'setStatuses' | 'unreadCount'

/** One element of `{ events: [...] }`, exactly as it goes on the wire. */
export interface UpstreamEvent {
  type: string
  /** Only with the 'outer-times' profile: the event's time, which is then null inside `event`. */
  timestamp?: string | number
  event: Record<string, unknown>
}

export interface RequestRecord {
  method: string
  path: string
  /** A RouteName, 'operator' for the operator routes, or 'notFound'. */
  route: string
  /** '' when the path has no token. */
  token: string
  clientId?: string
  query: Record<string, string>
  body: unknown
  /** Our clock (Date.now()), not the upstream's. */
  at: number
  /** '1.1' or '2.0'. */
  httpVersion: string
}

/** Connections the emulator has accepted, for tests and benchmarks that count them. */
export interface ConnectionStats {
  /** TCP connections open now. */
  open: number
  /** TCP connections accepted since the start. */
  accepted: number
  /** HTTP/2 sessions open now (each on one of the open connections). */
  http2Sessions: number
}

export interface Emulator {
  /** Chat API base, e.g. 'http://127.0.0.1:43211/chatapi'; requests go to `${url}/${token}…`. */
  url: string
  /** e.g. 'http://127.0.0.1:43211' */
  origin: string
  tokens: string[]
  /** Answers held polls, drops hung requests and pending deliveries, then stops listening. */
  close(): Promise<void>
  setWebhookUrl(url: string | undefined): void
  /** Appends an agentResponse event and calls the webhook. */
  agentReply(token: string, clientId: string, text: string): UpstreamEvent
  /** Appends an event of any type; `body` is merged into `event`. */
  publish(token: string, clientId: string, type: string, body?: Record<string, unknown>): UpstreamEvent
  /** Sends a text campaign to the webhook only. */
  campaign(token: string, clientIds: string[], text: string): void
  /** Held /events requests right now for that key; cid undefined counts every cid. */
  activePolls(token: string, clientId: string, cid?: string): number
  /** The most ever held at once for that key; cid undefined counts every cid. */
  maxActivePolls(token: string, clientId: string, cid?: string): number
  /** Connections accepted and open; also at GET /operator/connections. */
  readonly connections: ConnectionStats
  /** Every request received, newest last, bounded to the last 10,000. */
  readonly requests: RequestRecord[]
  on(event: 'request', fn: (record: RequestRecord) => void): this
  faults: FaultController
}
