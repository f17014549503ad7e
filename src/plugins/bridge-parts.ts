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
  const sessions = new Sessions(config.HEARTBEAT_MS)
  const requests = new Requests({
    apis,
    resultCacheMs: config.RESULT_CACHE_MS,
    results: cluster?.results,
    lanes: cluster?.lanes,
    onChannelRejected: (channel, reason) => {
      apis.get(channel)?.traits.refuse(reason)
      sessions.rejectChannel(channel)
    }
  })
  metrics?.bind({
    polls: () => cluster?.feeds.owned ?? hub.stats().feeds,
    outboundBytes: () => sessions.outboundBytes(),
    socketsByChannel: () => sessions.socketsByChannel(),
    refusedChannels: () => [...apis].filter(([, api]) => api.traits.refused).map(([name]) => name)
  })
  if (metrics !== undefined && cluster !== undefined) registerClusterMetrics(metrics.registry, cluster.health, cluster.feeds)
  return { ...credentials, ...feeds, metrics, apis, sessions, requests }
}
