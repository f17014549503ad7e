import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** The live state the gauges read at scrape time. */
export interface MetricSources {
  polls: () => number
  outboundBytes: () => number
  socketsByChannel: () => Map<string, number>
  /** Channels whose token the upstream refuses now. */
  refusedChannels: () => string[]
}

/**
 * Every Prometheus metric of the bridge, on a registry of its own (so two
 * bridges in one process, as in tests, do not collide). The meaning of each
 * one is in docs/operations.md.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly hellos = new Counter({ name: 'bridge_hellos_total', help: 'Hellos by result', labelNames: ['channel', 'result'], registers: [this.registry] })
  readonly closes = new Counter({ name: 'bridge_socket_closes_total', help: 'Socket closes by close code', labelNames: ['code'], registers: [this.registry] })
  readonly upstreamDuration = new Histogram({
    name: 'bridge_upstream_request_duration_seconds',
    help: 'Upstream call duration by call and outcome (HTTP status, or the error code)',
    labelNames: ['call', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry]
  })

  readonly eventsForwarded = new Counter({ name: 'bridge_events_forwarded_total', help: 'Event frames sent to sockets', labelNames: ['channel'], registers: [this.registry] })
  readonly upstreamEvents = new Counter({ name: 'bridge_upstream_events_total', help: 'New events read from the upstream (before fan-out)', labelNames: ['channel'], registers: [this.registry] })
  readonly eventAge = new Histogram({
    name: 'bridge_event_age_seconds',
    help: 'Age of an event when the bridge forwards it: now minus its upstream timestamp (includes any upstream clock offset)',
    labelNames: ['channel'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry]
  })

  readonly resumes = new Counter({ name: 'bridge_resumes_total', help: 'Hellos with a resume cursor, by outcome', labelNames: ['outcome'], registers: [this.registry] })
  readonly webhookObjects = new Counter({ name: 'bridge_webhook_objects_total', help: 'Webhook objects by result (accepted, or duplicate of a retry or of a polled answer)', labelNames: ['channel', 'result'], registers: [this.registry] })
  readonly offlineHook = new Counter({ name: 'bridge_offline_hook_total', help: 'Webhook events for clients who are away, by what became of their post to OFFLINE_HOOK_URL', labelNames: ['result'], registers: [this.registry] })
  readonly rateLimited = new Counter({ name: 'bridge_rate_limited_total', help: 'Requests refused with RATE_LIMITED', registers: [this.registry] })
  readonly requests = new Counter({ name: 'bridge_requests_total', help: 'Client requests by type and result', labelNames: ['type', 'result'], registers: [this.registry] })
  readonly upstreamQuirks = new Counter({
    name: 'bridge_upstream_quirks_total',
    help: 'Odd upstream answers the bridge copes with, by kind (untimed_event, late_stamp, quick_empty, stale_answer, clock_mismatch)',
    labelNames: ['channel', 'quirk'],
    registers: [this.registry]
  })

  private sources: MetricSources | undefined

  constructor () {
    collectDefaultMetrics({ register: this.registry })
    const live = (): MetricSources | undefined => this.sources
    // Read at scrape time from the live state, so nothing is counted twice or forgotten.
    this.registry.registerMetric(new Gauge({
      name: 'bridge_upstream_polls_active', help: 'Upstream /events long polls kept (one per connection key)', registers: [],
      collect () { const s = live(); if (s !== undefined) this.set(s.polls()) }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'bridge_upstream_channel_refused', help: '1 while the upstream refuses the channel token', labelNames: ['channel'], registers: [],
      collect () {
        const s = live()
        if (s === undefined) return
        this.reset()
        for (const channel of s.refusedChannels()) this.set({ channel }, 1)
      }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'bridge_outbound_queue_bytes', help: 'Bytes queued to clients, not yet written to their sockets', registers: [],
      collect () { const s = live(); if (s !== undefined) this.set(s.outboundBytes()) }
    }))
    this.registry.registerMetric(new Gauge({
      name: 'bridge_sockets_open', help: 'Open client sockets by channel', labelNames: ['channel'], registers: [],
      collect () {
        const s = live()
        if (s === undefined) return
        this.reset()
        for (const [channel, n] of s.socketsByChannel()) this.set({ channel }, n)
      }
    }))
  }

  bind (sources: MetricSources): void { this.sources = sources }
}
