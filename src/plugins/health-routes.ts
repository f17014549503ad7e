import type { FastifyInstance } from 'fastify'

/** Liveness and readiness, for load balancers and orchestrators. */
export async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    if (!app.bridge.ready) return await reply.code(503).send({ status: 'not ready' })
    return { status: 'ready', sockets: app.bridge.sessions.size, ...app.bridge.hub.stats() }
  })
}
