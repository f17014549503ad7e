/**
 * `chatapi-bridge/client`, kept for those who imported the SDK from the
 * bridge's package before it became a package of its own: new code imports
 * `@chatapi-bridge/client`, which this only re-exports.
 */
export * from '@chatapi-bridge/client'
