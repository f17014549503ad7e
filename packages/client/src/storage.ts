/** The part of the Web Storage API the client uses; `localStorage` fits, and so does a Map wrapper. */
export interface KeyValueStorage {
  getItem: (key: string) => string | null
  setItem: (key: string, value: string) => void
  removeItem: (key: string) => void
}

/** Storage that lasts as long as the process: the default outside a browser. */
export class MemoryStorage implements KeyValueStorage {
  private readonly values = new Map<string, string>()
  getItem (key: string): string | null { return this.values.get(key) ?? null }
  setItem (key: string, value: string): void { this.values.set(key, value) }
  removeItem (key: string): void { this.values.delete(key) }
}

/** `localStorage` where there is one that works (not in Node, nor in some sandboxed frames), memory otherwise. */
export function defaultStorage (): KeyValueStorage {
  try {
    const ls = (globalThis as { localStorage?: KeyValueStorage }).localStorage
    if (ls !== undefined) {
      const probe = '__chatapi-bridge-probe__'
      ls.setItem(probe, '1')
      ls.removeItem(probe)
      return ls
    }
  } catch {
    // Access denied (storage disabled, opaque origin): fall through to memory.
  }
  return new MemoryStorage()
}

/**
 * What the client keeps between connections and page loads: the newest
 * ticket, the cursor of the last event processed on each cid, and the
 * transport to try first. Keys are namespaced by bridge and channel, and
 * cursors by cid too, because a cursor is valid only for the connection it
 * was issued to. A storage that throws (quota, private mode) costs a
 * resume, never a crash.
 */
export class ClientStore {
  private readonly storage: KeyValueStorage
  private readonly prefix: string

  constructor (storage: KeyValueStorage, namespace: string) {
    this.storage = storage
    this.prefix = `chatapi-bridge:${namespace}:`
  }

  get ticket (): string | undefined { return this.read('ticket') }
  set ticket (value: string | undefined) { this.write('ticket', value) }

  /** The transport that worked where a WebSocket did not, and until when to use it first (`http@<epoch ms>`). */
  get transport (): string | undefined { return this.read('transport') }
  set transport (value: string | undefined) { this.write('transport', value) }

  cursor (cid: string): string | undefined { return this.read(`cursor:${cid}`) }
  setCursor (cid: string, value: string | undefined): void { this.write(`cursor:${cid}`, value) }

  private read (key: string): string | undefined {
    try {
      return this.storage.getItem(this.prefix + key) ?? undefined
    } catch {
      return undefined
    }
  }

  private write (key: string, value: string | undefined): void {
    try {
      if (value === undefined) this.storage.removeItem(this.prefix + key)
      else this.storage.setItem(this.prefix + key, value)
    } catch {
      // See the class comment.
    }
  }
}
