/**
 * The client of chatapi-bridge, for browsers and Node: `@chatapi-bridge/client`.
 * It has no dependency; in a browser it is served by the bridge at /sdk/index.js.
 * The bridge itself imports `backoffDelay` and `Backoff` from here, so the
 * reconnect backoff is written once for the SDK and the upstream poller.
 *
 * ```js
 * import { BridgeClient } from '@chatapi-bridge/client'  // or '/sdk/index.js' in a page
 * import WebSocket from 'ws'                              // Node only
 *
 * const client = new BridgeClient({ url: 'wss://chat.example.com/v1/ws', WebSocket })
 * client.on('event', (e) => { if (e.type === 'agentResponse') console.log(e.event.text) })
 * client.on('state', (s) => { console.log(s.state, s.reason ?? '') })
 * await client.connect()
 * const answer = await client.send('hello')
 * const { chat } = await client.history({ limit: 50 })   // [{ author: 'client', text: 'hello', … }, { author: 'bot', replies: […] }]
 * for await (const e of client.events()) console.log(e.type)
 * ```
 */
export { BridgeClient } from './bridge-client.js'
export type { ClientEvents } from './client-events.js'
export type { BridgeClientOptions } from './client-options.js'
export type { Clock } from './clock.js'
export type { ClientEnvironment, EnvironmentChange } from './environment.js'
export type { BackgroundPolicy } from './lifecycle.js'
export type { TokenSource } from './credential.js'
export type { ConnectionState, StateChange } from './connection-state.js'
export type { WebSocketConstructor, WebSocketLike } from './socket-like.js'
export type { TransportName } from './transport-choice.js'
export type { FetchLike } from './http-stream.js'
export { BridgeRequestError, ClientErrorCode } from './client-errors.js'
export { backoffDelay, slowDownDelay, DEFAULT_BACKOFF } from './backoff.js'
export type { Backoff } from './backoff.js'
export { CLOSE_CODES, CloseCode, closeAction, closeMeaning, closeReason } from './close-codes.js'
export type { CloseAction } from './close-codes.js'
export { MemoryStorage } from './storage.js'
export type { KeyValueStorage } from './storage.js'
export { SUBPROTOCOL } from './frames.js'
export type {
  AuthResult, BotAnswer, BridgeEvent, ChatAuthor, ChatMessage, ErrorFrame, EventFrame, HeartbeatFrame, HistoryMessage, HistoryOptions, HistoryResult,
  Message, MessageStatus, Reply, ResultError, ResultFrame, ServerFrame, UpstreamElement, UpstreamEvent, WelcomeFrame
} from './frames.js'
export { historyMessages } from './history-messages.js'
export { parseTimestamp } from './timestamp.js'
