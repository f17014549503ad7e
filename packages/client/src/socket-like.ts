/**
 * The part of the WHATWG WebSocket the client uses. The browser's WebSocket
 * and the `ws` package's both fit. The handlers take `never` so that either
 * one's event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number
  onopen: ((event: never) => void) | null
  onmessage: ((event: never) => void) | null
  onclose: ((event: never) => void) | null
  onerror: ((event: never) => void) | null
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** `readyState` of a socket that can send. */
export const SOCKET_OPEN = 1

/** Closes a socket; `cut` ends it at once where the class can (the ws package's terminate), for a socket that may be dead. */
export function shut (ws: WebSocketLike, code: number, reason: string, cut: boolean): void {
  const terminate = (ws as { terminate?: () => void }).terminate
  try {
    if (cut && typeof terminate === 'function') terminate.call(ws)
    else ws.close(code, reason)
  /* c8 ignore next 3 -- browsers throw on a close code they do not accept; ours are all valid */
  } catch {
    // Nothing more to do with this socket.
  }
}
