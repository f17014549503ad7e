import type { FastifyInstance, FastifyPluginAsync, FastifyPluginOptions } from 'fastify'

/**
 * A plugin that runs on the instance registering it rather than in a context
 * of its own, as fastify-plugin makes one: what it decorates and the hooks it
 * adds belong to the app, in the order the app registers it. Fastify reads
 * the two symbols; fastify-plugin itself is not a dependency.
 */
export function rootPlugin<O extends FastifyPluginOptions> (name: string, fn: (app: FastifyInstance, opts: O) => Promise<void>): FastifyPluginAsync<O> {
  return Object.assign(fn, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name })
}
