import { BridgeError } from '../socket/errors.js'
import type { ChatApi } from './chat-api.js'
import { callFor, type UpstreamCall } from './calls.js'
import { isChannelRejected } from './upstream-answers.js'
import type { TraitsLog } from './traits.js'

/** A clientId that no person has: the check reads its unread count, which changes nothing upstream. */
export const CHECK_CLIENT = 'chatapi-bridge-check'

/** The unread-count call of CHECK_CLIENT, under a name of its own in logs and metrics. */
const CHECK_CALL: UpstreamCall = { ...callFor({ type: 'unreadCount', id: 'check' }, CHECK_CLIENT, ''), name: 'check' }

/**
 * One cheap call per channel at start-up, so that an operator learns at once
 * whether the token is accepted (and the bridge learns the upstream's clock
 * from the answer's Date header before the first socket starts a poll).
 * Resolves with the outcome; never rejects.
 */
export async function checkChannel (api: ChatApi, log: TraitsLog): Promise<'accepted' | 'refused' | 'unknown'> {
  try {
    await api.call(CHECK_CALL)
    api.traits.accepted()
    log.info({ upstream: api.origin }, 'upstream accepts the channel token')
    return 'accepted'
  } catch (err) {
    const e = err instanceof BridgeError ? err : undefined
    // The check's own 401 or 403 speaks for the token itself, as a poll's would.
    if (e !== undefined && (isChannelRejected(e) || e.details?.status === 401 || e.details?.status === 403)) {
      api.traits.refuse(e.message, { status: e.details?.status })
      return 'refused'
    }
    log.warn({ upstream: api.origin, code: e?.code, status: e?.details?.status, reason: e?.message }, 'could not check the channel token at start-up')
    return 'unknown'
  }
}
