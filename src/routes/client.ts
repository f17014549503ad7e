import type { FastifyInstance } from 'fastify'

export interface ClientRouteOptions { demoPage: boolean }

/** The browser build of the client SDK and, when enabled, the demo chat page. */
export async function clientRoutes (_app: FastifyInstance, _o: ClientRouteOptions): Promise<void> {
  // Filled in with the client SDK and the demo page.
}
