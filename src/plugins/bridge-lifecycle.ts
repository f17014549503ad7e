import type { Channel, Config } from '../config.js'
import { Bridge } from './bridge.js'
import type { BridgeParts } from './bridge-parts.js'
import { rootPlugin } from './root-plugin.js'
import { Upgrades } from './upgrades.js'

export interface BridgeLifecycleOptions {
  config: Config
  channels: Channel[]
  parts: BridgeParts
}

/**
 * Decorates the app with `bridge` and orders its start and its shutdown.
 * Registered before @fastify/websocket, so that its preClose runs first:
 * sockets get 1012, not a bare close.
 */
export const bridgeLifecycle = rootPlugin('bridge-lifecycle', async (app, o: BridgeLifecycleOptions) => {
  const { config, parts: { sessions, hub, requests, gate, cluster, metrics, handoff } } = o
  const bridge = new Bridge({
    sessions,
    hub,
    channels: o.channels,
    metrics,
    drainMs: config.DRAIN_MS,
    healthy: () => cluster?.health.up ?? true
  })
  app.decorate('bridge', bridge)
  const upgrades = new Upgrades(app.server)

  app.addHook('preClose', async () => {
    upgrades.refuse()
    bridge.refuse()
    requests.shutdown()
    await sessions.closeAll(Math.min(config.SHUTDOWN_TIMEOUT_MS, 2000))
    upgrades.cut()
    gate.close()
    // Every socket is closed, so every feed lingers: what it kept goes to the next start.
    await handoff?.save()
    await hub.close()
  })
  app.addHook('onReady', async () => {
    await handoff?.restore()
    bridge.accept()
  })
  if (cluster !== undefined) {
    app.addHook('onReady', async () => { await cluster.waitUp(Math.max(2000, config.REDIS_TIMEOUT_MS)) })
    app.addHook('onClose', async () => { await cluster.close() })
  }
})
