import type { FastifyBaseLogger } from 'fastify'
import type { Channel, Config } from '../config.js'
import { within } from '../lib/deadline.js'
import { ChatApi } from '../upstream/chat-api.js'
import { checkChannel } from '../upstream/check.js'
import { ChannelTraits } from '../upstream/traits.js'
import type { Metrics } from './metrics.js'
import { rootPlugin } from './root-plugin.js'

/** One Chat API client per channel, by channel name; each logs as `component: upstream`. */
export function buildUpstreamClients (config: Config, channels: Channel[], log: FastifyBaseLogger, metrics: Metrics | undefined): Map<string, ChatApi> {
  const observe = metrics === undefined
    ? undefined
    : (call: string, outcome: string, seconds: number) => { metrics.upstreamDuration.observe({ call, outcome }, seconds) }
  const pools = {
    http2: config.UPSTREAM_HTTP2,
    callsHttp2: config.UPSTREAM_CALLS_HTTP2,
    streams: config.UPSTREAM_STREAMS,
    pollConnections: config.UPSTREAM_POLL_CONNECTIONS,
    callConnections: config.UPSTREAM_CONNECTIONS
  }
  const upstreamLog = log.child({ component: 'upstream' })
  const apis = new Map<string, ChatApi>()
  for (const c of channels) {
    const traits = new ChannelTraits({
      log: upstreamLog.child({ channel: c.name }),
      onQuirk: metrics === undefined ? undefined : (quirk) => { metrics.upstreamQuirks.inc({ channel: c.name, quirk }) }
    })
    apis.set(c.name, new ChatApi(c, {
      requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
      pollTimeoutMs: config.POLL_TIMEOUT_MS,
      callsPerClient: config.UPSTREAM_CALLS_PER_CLIENT,
      pools,
      observe,
      traits
    }))
  }
  return apis
}

export interface UpstreamClientsOptions { apis: Map<string, ChatApi> }

/**
 * Checks each channel once the app is ready and closes the clients last. One
 * cheap call per channel tells the operator whether its token works, and the
 * bridge the upstream's clock; a slow upstream does not hold the start-up up.
 */
export const upstreamClients = rootPlugin('upstream-clients', async (app, o: UpstreamClientsOptions) => {
  const log = app.log.child({ component: 'upstream' })
  app.addHook('onClose', async () => {
    await Promise.all([...o.apis.values()].map(async (a) => { await a.close() }))
  })
  app.addHook('onReady', async () => {
    const checks = Promise.all([...o.apis.values()].map(async (api) => { await checkChannel(api, log.child({ channel: api.channel.name })) }))
    await within(checks.then(() => {}), 2000, undefined)
  })
})
