import { Counter, Gauge, type Registry } from 'prom-client'
import type { ClusterFeeds } from './cluster-feeds.js'
import type { RedisHealth } from './redis-health.js'

/** The cluster's metrics, read at scrape time; their meaning is in docs/operations.md. */
export function registerClusterMetrics (registry: Registry, health: RedisHealth, feeds: ClusterFeeds): void {
  const gauge = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
  }
  const counter = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Counter({
      name,
      help,
      registers: [],
      collect () {
        this.reset()
        this.inc(read())
      }
    }))
  }
  gauge('bridge_redis_up', '1 while Redis answers; 0 while it is down or slower than REDIS_TIMEOUT_MS', () => health.up ? 1 : 0)
  counter('bridge_redis_outages_total', 'Times Redis became unavailable', () => health.outages)
  gauge('bridge_cluster_polls_owned', 'Connections this instance polls upstream for the whole cluster (it holds their lease)', () => feeds.owned)
  gauge('bridge_cluster_events_held', 'Events polled while Redis could not take them, waiting to be published', () => feeds.held)
  counter('bridge_cluster_leases_acquired_total', 'Leases this instance took: new connections and takeovers from instances that left or died', () => feeds.counts.acquired)
  counter('bridge_cluster_gaps_total', 'Gaps in a connection\'s stream that the upstream could not fill; its sockets were told to resume', () => feeds.counts.lost)
}
