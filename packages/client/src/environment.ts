/** A change of the device the client runs on: its network, or whether the app (or tab) is in front. */
export type EnvironmentChange = 'online' | 'offline' | 'visible' | 'hidden'

/**
 * What the client hears of the device it runs on. In a browser this is
 * `window`'s `online`/`offline` and `document`'s `visibilitychange`; React
 * Native and Node have neither, so there the client hears nothing unless an
 * app gives it one (from `AppState` and NetInfo, say).
 */
export interface ClientEnvironment {
  /** Calls `listener` at each change; returns the function that stops it. */
  watch: (listener: (change: EnvironmentChange) => void) => () => void
  /** False only when the device knows it has no network: `navigator.onLine` is true on any network, working or not. */
  isOnline: () => boolean
  isVisible: () => boolean
}

interface Listening {
  addEventListener: (type: string, fn: () => void) => void
  removeEventListener: (type: string, fn: () => void) => void
}

type Globals = Partial<Listening> & {
  navigator?: { onLine?: unknown }
  document?: Partial<Listening> & { visibilityState?: unknown }
}

const listens = (o: Partial<Listening> | undefined): o is Listening =>
  typeof o?.addEventListener === 'function' && typeof o.removeEventListener === 'function'

/**
 * The environment of the globals, feature-detected: what exists is listened
 * to, what does not is left out, and nothing throws where nothing exists (a
 * bare `WebSocket` global, as in React Native). `g` is the global object; a
 * test passes its own.
 */
export function globalEnvironment (g: Globals = globalThis as Globals): ClientEnvironment {
  const doc = g.document
  // Only a document that says whether it is hidden is worth listening to.
  const shown = typeof doc?.visibilityState === 'string' && listens(doc) ? doc : undefined
  const win = listens(g) ? g : undefined
  return {
    watch: (listener) => {
      const online = (): void => { listener('online') }
      const offline = (): void => { listener('offline') }
      const visibility = (): void => { listener(doc?.visibilityState === 'hidden' ? 'hidden' : 'visible') }
      win?.addEventListener('online', online)
      win?.addEventListener('offline', offline)
      shown?.addEventListener('visibilitychange', visibility)
      return () => {
        win?.removeEventListener('online', online)
        win?.removeEventListener('offline', offline)
        shown?.removeEventListener('visibilitychange', visibility)
      }
    },
    isOnline: () => g.navigator?.onLine !== false,
    isVisible: () => doc?.visibilityState !== 'hidden'
  }
}
