/**
 * The client of chatapi-bridge, for browsers and Node: `chatapi-bridge/client`.
 * It has no dependency; in a browser it is served by the bridge at /sdk/index.js.
 */
export { BridgeClient } from './client.js'
export type { BridgeClientOptions, ClientEvents, ConnectionState, StateChange, WebSocketConstructor, WebSocketLike } from './client.js'
export { BridgeRequestError, ClientErrorCode } from './errors.js'
export { backoffDelay, slowDownDelay, DEFAULT_BACKOFF } from './backoff.js'
export type { Backoff } from './backoff.js'
export { CLOSE_CODES, closeAction, closeMeaning } from './close-codes.js'
export type { CloseAction } from './close-codes.js'
export { MemoryStorage } from './storage.js'
export type { KeyValueStorage } from './storage.js'
export { SUBPROTOCOL } from './frames.js'
export type {
  BotAnswer, BridgeEvent, ErrorFrame, EventFrame, HistoryMessage, HistoryOptions, Message, MessageStatus,
  Reply, ResultError, ResultFrame, UpstreamEvent, WelcomeFrame
} from './frames.js'
