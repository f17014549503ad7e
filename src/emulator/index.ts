/**
 * A local stand-in for the Chat API of the Tovie Platform (JAICP, Aimylogic).
 * It exists so that the bridge can run, be tested and be measured without a
 * live bot: it keeps each client's event log with the documented long-poll
 * semantics, answers with a small demo bot, calls a webhook, and can be told
 * to misbehave (faults) the way a real upstream or its proxy does.
 */
export { startEmulator, type Emulator, type EmulatorOptions } from './emulator.js'
export type { ConnectionStats } from './connections.js'
export type { UpstreamEvent } from './event-log.js'
export type { Fault, FaultController, FaultKind } from './faults.js'
export { PROFILES, parseProfiles, type ProfileName } from './profiles.js'
export type { RequestRecord } from './request-log.js'
export type { RouteName } from './route-table.js'
