import { randomBytes } from 'node:crypto'

/**
 * How the frames of a POST reach the event stream they name, wherever it is
 * open. A stream's key starts with the instance that holds it, so any
 * instance that takes the POST knows where to send it.
 */
export interface StreamRouter {
  /** This instance's part of every key it hands out. */
  readonly instance: string
  /** Hands `body` to the instance that holds `key`; false when none took it (the stream, or its instance, is gone). */
  forward: (instance: string, key: string, body: string) => Promise<boolean>
  /** Called with the frames other instances forward here. */
  onForwarded: (fn: (key: string, body: string) => void) => void
  close: () => void
}

/** One instance alone: a key of another instance is one this bridge never made, or made before a restart. */
export function localRouter (): StreamRouter {
  return {
    instance: randomBytes(9).toString('base64url'),
    forward: async () => false,
    onForwarded: () => {},
    close: () => {}
  }
}

/** A new stream's key: `<instance>.<random>`, unguessable as a socket is unreachable. */
export function streamKey (instance: string): string {
  return `${instance}.${randomBytes(18).toString('base64url')}`
}

/** The instance part of a key, or undefined for one of another shape. */
export function instanceOf (key: string): string | undefined {
  return /^([\w-]{1,64})\.[\w-]{16,64}$/.exec(key)?.[1]
}
