import Fastify from 'fastify'
import type { Metrics } from './metrics.js'
import { metricsRoutes } from './metrics-route.js'
import { rootPlugin } from './root-plugin.js'

export interface MetricsEndpointOptions {
  metrics: Metrics
  /** METRICS_PORT: a listener of its own, so that /metrics stays off the public port. */
  port: number | undefined
  host: string
}

/** Serves /metrics on the main port, or on a listener of its own started and closed with the app. */
export const metricsEndpoint = rootPlugin('metrics-endpoint', async (app, o: MetricsEndpointOptions) => {
  const { metrics, port } = o
  if (port === undefined) {
    await app.register(metricsRoutes, { metrics })
    return
  }
  const side = Fastify({ logger: false })
  await side.register(metricsRoutes, { metrics })
  app.addHook('onListen', async () => {
    await side.listen({ port, host: o.host })
    app.bridge.metricsPort = (side.server.address() as { port: number }).port
  })
  app.addHook('onClose', async () => { await side.close() })
})
