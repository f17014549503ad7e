import { accessOf } from './access.js'
import { statusCall } from './endpoints.js'
import type { ProbeHttp } from './http.js'
import type { StatusFinding } from './types.js'

/** The status the server gives each of the probe's messages (SENT, DELIVERED, READ, NOT_SENT, …). */
export async function probeStatuses (http: ProbeHttp, clientId: string, questionIds: string[]): Promise<StatusFinding> {
  const seen = new Set<string>()
  let access: StatusFinding['access'] = 'unknown'
  for (const questionId of questionIds) {
    const outcome = await http.call(statusCall(clientId, questionId))
    if (access !== 'works') access = accessOf(outcome)
    const status = outcome.kind === 'answer' ? (outcome.json as { status?: unknown } | undefined)?.status : undefined
    if (typeof status === 'string') seen.add(status)
  }
  return { access, seen: [...seen] }
}
