import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Sessions } from '../socket/sessions.js'
import { HookSender } from '../webhook/hook-sender.js'
import { OfflineHook } from '../webhook/offline-hook.js'
import { localPresence, type Presence } from '../webhook/presence.js'
import type { Metrics } from './metrics.js'

export interface OfflineHookParts {
  config: Config
  sessions: Sessions
  cluster: Cluster | undefined
  metrics: Metrics | undefined
}

/**
 * The offline hook, when OFFLINE_HOOK_URL is set: its presence follows the
 * sessions (in a cluster, through Redis, and only then), and it stops with
 * the app. Nothing of it exists, and Redis is asked nothing more, without it.
 */
export function buildOfflineHook (app: FastifyInstance, o: OfflineHookParts): OfflineHook | undefined {
  const { config, sessions, cluster, metrics } = o
  if (config.OFFLINE_HOOK_URL === undefined || config.OFFLINE_HOOK_SECRET === undefined) return undefined
  let presence: Presence = localPresence(sessions)
  if (cluster !== undefined) {
    const shared = cluster.presence(sessions)
    sessions.onPresence = (channel, clientId, present) => { shared.changed(channel, clientId, present) }
    presence = shared
  }
  const sender = new HookSender({ url: config.OFFLINE_HOOK_URL, secret: config.OFFLINE_HOOK_SECRET, timeoutMs: config.OFFLINE_HOOK_TIMEOUT_MS })
  const hook = new OfflineHook({
    post: async (body, signal) => await sender.post(body, signal),
    presence,
    backoff: { baseMs: config.BACKOFF_BASE_MS, maxMs: config.BACKOFF_MAX_MS },
    dedupMs: config.WEBHOOK_RETENTION_MS,
    log: app.log.child({ component: 'offline-hook' }),
    onResult: metrics === undefined ? undefined : (result) => { metrics.offlineHook.inc({ result }) }
  })
  app.addHook('onClose', async () => {
    hook.close()
    await sender.close()
  })
  return hook
}
