import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import type { Config, Channel } from './config.js'
import { bridgeLifecycle } from './plugins/bridge-lifecycle.js'
import { buildBridgeParts } from './plugins/bridge-parts.js'
import { healthRoutes } from './plugins/health-routes.js'
import { metricsEndpoint } from './plugins/metrics-endpoint.js'
import { clientRoutes } from './plugins/pages.js'
import { serverOptions, websocketOptions, type LogOptions } from './plugins/server-options.js'
import { wsRoutes } from './plugins/socket-route.js'
import { localRouter } from './socket/stream-router.js'
import { upstreamClients } from './plugins/upstream-clients.js'
import { webhookReceiver } from './plugins/webhook-receiver.js'

export interface AppOptions extends LogOptions {
  channels: Channel[]
  /** Serve the demo chat page at `/`. */
  demoPage?: boolean
}

/**
 * Builds the bridge without listening: tests build it the same way the
 * server does. Hooks of one kind run in the order they are added (onClose
 * hooks in the reverse order), so the order of the plugins is part of the
 * design: the channel checks run before the bridge takes sockets, the
 * bridge's preClose runs before @fastify/websocket's, and the upstream
 * clients close after the Redis side and the metrics listener.
 */
export async function buildApp (config: Config, opts: AppOptions): Promise<FastifyInstance> {
  if (opts.channels.length === 0) throw new Error('at least one channel is needed')
  const app = Fastify(serverOptions(config, opts))
  const parts = buildBridgeParts(app, config, opts.channels)
  const { metrics, webhooks } = parts

  await app.register(upstreamClients, { apis: parts.apis })
  await app.register(bridgeLifecycle, { config, channels: opts.channels, parts })
  await app.register(websocket, websocketOptions(config))
  await app.register(healthRoutes)
  if (metrics !== undefined) await app.register(metricsEndpoint, { metrics, port: config.METRICS_PORT, host: config.HOST })
  await app.register(clientRoutes, { demoPage: opts.demoPage ?? false })
  if (webhooks !== undefined) {
    await app.register(webhookReceiver, { config, channels: opts.channels, webhooks, hub: parts.hub, metrics, sessions: parts.sessions, cluster: parts.cluster })
  } else if (config.OFFLINE_HOOK_URL !== undefined) {
    // The hook posts what the webhook brings: with no webhook there is nothing to post, which a silent hook would hide.
    app.log.warn('OFFLINE_HOOK_URL is set but no webhook is (WEBHOOK_SECRET, or a "webhookSecret" in CHANNELS): the hook posts only webhook events, so it will post nothing')
  }
  const { auth, cursors, hub, requests, sessions } = parts
  const router = parts.cluster?.streamRoutes() ?? localRouter()
  await app.register(wsRoutes, { config, auth, cursors, hub, requests, sessions, metrics, router })
  return app
}
