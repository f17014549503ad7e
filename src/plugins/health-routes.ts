import type { FastifyInstance } from 'fastify'

/** Liveness and readiness, for load balancers and orchestrators. */
export async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    if (!app.bridge.ready) return await reply.code(503).send({ status: 'not ready' })
    const stats = app.bridge.hub.stats()
    // Every upstream poll this instance may keep is held by a socket: a new one would be refused, so balancers should look elsewhere.
    if (stats.full) return await reply.code(503).send({ status: 'full', sockets: app.bridge.sessions.size, ...stats })
    return { status: 'ready', sockets: app.bridge.sessions.size, ...stats }
  })
}
