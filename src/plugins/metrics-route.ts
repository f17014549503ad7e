import type { FastifyInstance } from 'fastify'
import type { Metrics } from './metrics.js'

/** Prometheus metrics at /metrics. */
export async function metricsRoutes (app: FastifyInstance, o: { metrics: Metrics }): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const body = await o.metrics.registry.metrics()
    return await reply.type(o.metrics.registry.contentType).send(body)
  })
}
