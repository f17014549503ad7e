/**
 * The bridge as a library: `import { buildApp, loadConfig } from 'chatapi-bridge'`.
 * `chatapi-bridge` the command (dist/server.js) is built from these parts;
 * a host that embeds the bridge does what it does:
 *
 * ```js
 * const config = loadConfig(process.env)
 * const app = await buildApp(config, { channels: parseChannels(config) })
 * await app.listen({ port: config.PORT, host: config.HOST })
 * // on shutdown: await app.bridge.drain(); await app.close()
 * ```
 *
 * The built-in Chat API emulator is here too, for tests and demos.
 */
export { buildApp, type AppOptions } from './app.js'
export { ConfigError, ConfigSchema, channelWarnings, loadConfig, parseChannels, type Channel, type Config } from './config.js'
export type { Bridge } from './plugins/bridge.js'
export { REDACT } from './plugins/server-options.js'
export { parseProfiles, startEmulator, type Emulator, type EmulatorOptions } from './emulator/index.js'
