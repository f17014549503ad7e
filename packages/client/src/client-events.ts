import type { StateChange } from './connection-state.js'
import type { BridgeEvent, WelcomeFrame } from './frames.js'

/** The events of a client, by name, with the payload of each. */
export interface ClientEvents {
  /** An event the bridge pushed; the cursor moves past it once every listener has run. */
  event: BridgeEvent
  state: StateChange
  welcome: WelcomeFrame
  /** Continuity was lost (the bridge could not resume): reload what you show from `history()`. */
  gap: { reason: string }
  /** Something went wrong that no promise reports: a malformed frame, a listener that threw, a failing `auth` function, a refused refresh. */
  error: Error
  /** The bridge took a fresh credential on the open socket (no reconnect): the socket now lives until `expiresAt` (epoch ms). */
  credential: { expiresAt: number }
}
