import Fastify, { type FastifyHttpOptions } from 'fastify'
import type { Server } from 'node:http'
import type { Metrics } from './metrics.js'
import { metricsRoutes } from './metrics-route.js'
import { rootPlugin } from './root-plugin.js'

export interface MetricsEndpointOptions {
  metrics: Metrics
  /** METRICS_PORT: a listener of its own, so that /metrics stays off the public port. */
  port: number | undefined
  host: string
}

/**
 * The HTTP deadlines of a listener, as the main server has them from
 * HTTP_TIMEOUT_MS (server-options.ts): headers and body within `deadlineMs`,
 * or Node answers 408 and cuts the connection, looked for every quarter of
 * the deadline (a second at most) instead of Node's 30 s.
 */
export function httpDeadlines (deadlineMs: number): Pick<FastifyHttpOptions<Server>, 'requestTimeout' | 'http'> {
  return {
    requestTimeout: deadlineMs,
    http: { headersTimeout: deadlineMs, requestTimeout: deadlineMs, connectionsCheckingInterval: Math.min(1000, Math.ceil(deadlineMs / 4)) }
  }
}

/** Serves /metrics on the main port, or on a listener of its own started and closed with the app. */
export const metricsEndpoint = rootPlugin('metrics-endpoint', async (app, o: MetricsEndpointOptions) => {
  const { metrics, port } = o
  if (port === undefined) {
    await app.register(metricsRoutes, { metrics })
    return
  }
  // The main server's deadline, HTTP_TIMEOUT_MS as serverOptions gave it to Node: a client that sends half a
  // request must not hold a socket of this port either. A connection still open at close is cut, as there.
  const deadline = app.server.requestTimeout
  const side = Fastify({ logger: false, ...(deadline > 0 ? httpDeadlines(deadline) : {}), forceCloseConnections: true })
  await side.register(metricsRoutes, { metrics })
  app.addHook('onListen', async () => {
    await side.listen({ port, host: o.host })
    app.bridge.metricsPort = (side.server.address() as { port: number }).port
  })
  app.addHook('onClose', async () => { await side.close() })
})
