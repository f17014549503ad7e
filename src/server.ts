#!/usr/bin/env node
import { randomBytes } from 'node:crypto'
import { buildApp } from './app.js'
import { ConfigError, channelWarnings, loadConfig, parseChannels, type Channel } from './config.js'
import { parseProfiles, startEmulator, type Emulator } from './emulator/index.js'

/** The process entry: the only file that touches `process`. */
async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chatapi-bridge: configuration error\n${err.message}\n`)
      process.exit(78)
    }
    throw err
  }

  let channels: Channel[] = parseChannels(config)
  let emulator: Emulator | undefined
  if (channels.length === 0) {
    // The emulator delivers async answers, campaigns and agent replies to our webhook, as the platform would.
    config = { ...config, WEBHOOK_SECRET: config.WEBHOOK_SECRET ?? randomBytes(18).toString('base64url') }
    // The built-in emulator listens on loopback only, so its token is no secret.
    const token = 'demo-token'
    emulator = await startEmulator({
      port: config.EMULATOR_PORT,
      host: '127.0.0.1',
      tokens: [token],
      holdMs: config.EMULATOR_HOLD_MS,
      profiles: parseProfiles(config.EMULATOR_PROFILE ?? '')
    })
    channels = [{ name: 'default', url: emulator.url, token }]
  }

  const app = await buildApp(config, { channels, demoPage: config.DEMO_PAGE ?? emulator !== undefined })
  for (const warning of channelWarnings(config)) app.log.warn(warning)
  if (emulator !== undefined) {
    app.log.warn({ emulator: emulator.origin }, 'no UPSTREAM_URL set: using the built-in Chat API emulator (operator routes at /operator/…)')
    const emu = emulator
    app.addHook('onClose', async () => { await emu.close() })
  }

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    app.log.info({ signal }, 'shutting down')
    const deadline = setTimeout(() => {
      app.log.error('shutdown deadline passed: exiting')
      process.exit(1)
    }, config.SHUTDOWN_TIMEOUT_MS)
    deadline.unref()
    app.bridge.drain().then(async () => { await app.close() }).then(() => { process.exit(0) }, (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })

  await app.listen({ port: config.PORT, host: config.HOST })
  const { port } = app.server.address() as { port: number }
  const local = `${localHost(config.HOST)}:${port}`
  if (emulator !== undefined && config.WEBHOOK_SECRET !== undefined) {
    emulator.setWebhookUrl(`http://${local}/v1/webhook/default/${config.WEBHOOK_SECRET}`)
  }
  app.log.info({ port }, `chatapi-bridge ready: ws://${config.HOST}:${port}/v1/ws`)
  if (config.DEMO_PAGE ?? emulator !== undefined) {
    app.log.info(`demo chat page: http://${local}/ (or a terminal chat: npm run chat)`)
  }
}

/** How this machine reaches the bridge in a URL: loopback for a wildcard address, brackets around IPv6. */
function localHost (host: string): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  return reachable.includes(':') ? `[${reachable}]` : reachable
}

main().catch((err: unknown) => {
  process.stderr.write(`chatapi-bridge: failed to start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
