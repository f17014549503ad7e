import { PROFILES, isProfileName, type ProfileName } from './profiles.js'
import type { EmulatorOptions } from './types.js'

/**
 * One flag per profile, true when it is on. Each module that a profile
 * changes reads its own flags from this object, so that a profile's logic
 * sits in one place and the profile list is read once, here.
 */
export type ProfileFlags = Readonly<Record<ProfileName, boolean>>

export interface Settings {
  port: number
  host: string
  tokens: string[]
  holdMs: number
  webhookUrl: string | undefined
  webhookRetryDelayMs: number
  asyncDelayMs: number
  agentDelayMs: number
  clockOffsetMs: number
  lateStampMs: number
  flags: ProfileFlags
  http2: boolean
  http2MaxStreams: number
  logger: boolean | object
}

export function flagsOf (profiles: readonly ProfileName[]): ProfileFlags {
  const flags = {} as Record<ProfileName, boolean>
  for (const name of Object.keys(PROFILES) as ProfileName[]) flags[name] = profiles.includes(name)
  return flags
}

/** The default behaviour: every profile off. */
export const NO_PROFILE: ProfileFlags = flagsOf([])

/** The options with every default filled in. */
export function settingsOf (options: EmulatorOptions = {}): Settings {
  const profiles = [...new Set(options.profiles ?? [])]
  // The type keeps TypeScript callers right; this keeps a JavaScript caller from a silent no-op.
  for (const name of profiles) if (!isProfileName(name)) throw new TypeError(`unknown emulator profile: ${String(name)}`)
  return {
    port: options.port ?? 0,
    host: options.host ?? '127.0.0.1',
    tokens: options.tokens ?? ['demo-token'],
    holdMs: options.holdMs ?? 25_000,
    webhookUrl: options.webhookUrl,
    webhookRetryDelayMs: options.webhookRetryDelayMs ?? 500,
    asyncDelayMs: options.asyncDelayMs ?? 50,
    agentDelayMs: options.agentDelayMs ?? 1500,
    clockOffsetMs: options.clockOffsetMs ?? 0,
    lateStampMs: options.lateStampMs ?? 1000,
    flags: flagsOf(profiles),
    http2: options.http2 ?? false,
    http2MaxStreams: options.http2MaxStreams ?? 1000,
    logger: options.logger ?? false
  }
}
