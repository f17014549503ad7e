import type { FastifyInstance } from 'fastify'
import type { Channel, Config } from '../config.js'
import { registerClusterMetrics } from '../cluster/cluster-metrics.js'
import { Requests } from '../socket/requests.js'
import { Sessions } from '../socket/sessions.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { buildCredentials, type Credentials } from './credentials.js'
import { buildFeeds, type Feeds } from './feeds.js'
import { Metrics } from './metrics.js'
import { buildUpstreamClients } from './upstream-clients.js'

/** Everything the bridge is made of, before any route or hook uses it. */
export interface BridgeParts extends Credentials, Feeds {
  /** Absent when METRICS is off. */
  metrics: Metrics | undefined
  /** The Chat API client of each channel, by name. */
  apis: Map<string, ChatApi>
  sessions: Sessions
  requests: Requests
}

/** Builds the parts and ties them together; nothing listens or polls yet. */
export function buildBridgeParts (app: FastifyInstance, config: Config, channels: Channel[]): BridgeParts {
  const credentials = buildCredentials(config, app.log)
  const metrics = config.METRICS ? new Metrics() : undefined
  const apis = buildUpstreamClients(config, channels, app.log, metrics)
  const feeds = buildFeeds(app, config, { apis, cursors: credentials.cursors, metrics })
  const { cluster, hub } = feeds
  const sessions = new Sessions(config.HEARTBEAT_MS, {
    maxSockets: config.MAX_SOCKETS_PER_ADDRESS,
    newClientsPerS: config.NEW_CLIENTS_PER_ADDRESS_PER_S,
    newClientsBurst: config.NEW_CLIENTS_PER_ADDRESS_BURST
  })
  // A refused channel is known by its own polls (the feeds), never by one client's request.
  const requests = new Requests({
    apis,
    resultCacheMs: config.RESULT_CACHE_MS,
    resultCacheBytes: config.RESULT_CACHE_BYTES,
    resultClientBytes: config.RESULT_CACHE_CLIENT_BYTES,
    sendQueue: config.SEND_QUEUE_PER_CLIENT,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    results: cluster?.results,
    lanes: cluster?.lanes
  })
  metrics?.bind({
    polls: () => cluster?.feeds.owned ?? hub.stats().polling,
    outboundBytes: () => sessions.outboundBytes(),
    socketsByChannel: () => sessions.socketsByChannel(),
    refusedChannels: () => [...apis].filter(([, api]) => api.traits.refused).map(([name]) => name)
  })
  if (metrics !== undefined && cluster !== undefined) registerClusterMetrics(metrics.registry, cluster.health, cluster.feeds)
  return { ...credentials, ...feeds, metrics, apis, sessions, requests }
}
