import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import { buildApp, type EmulatorApp } from './app.js'
import { EmulatorCore } from './core.js'
import type { FaultController } from './faults.js'
import { settingsOf, type Settings } from './settings.js'
import type { ConnectionStats, Emulator, EmulatorOptions, RequestRecord, UpstreamEvent } from './types.js'

class RunningEmulator extends EventEmitter implements Emulator {
  /** Both set by listen(). */
  url = ''
  origin = ''
  readonly tokens: string[]
  readonly faults: FaultController
  readonly #core: EmulatorCore
  readonly #app: EmulatorApp
  #closed: Promise<void> | undefined

  constructor (settings: Settings) {
    super()
    this.#core = new EmulatorCore(
      settings,
      { warn: (details, message) => this.#app.log.warn(details, message) },
      record => this.emit('request', record)
    )
    this.#app = buildApp(this.#core, settings)
    this.#core.connections.watch(this.#app.server)
    this.tokens = [...this.#core.tokens]
    this.faults = this.#core.faults
  }

  async listen (port: number, host: string): Promise<void> {
    try {
      await this.#app.listen({ port, host })
    } catch (err) {
      await this.close()
      throw err
    }
    this.origin = originOf(this.#app.server.address() as AddressInfo)
    this.url = `${this.origin}/chatapi`
  }

  get connections (): ConnectionStats {
    return this.#core.connections.snapshot()
  }

  get requests (): RequestRecord[] {
    return this.#core.requests.records
  }

  close (): Promise<void> {
    this.#closed ??= this.#core.close().then(() => this.#app.close())
    return this.#closed
  }

  setWebhookUrl (url: string | undefined): void {
    this.#core.webhook.url = url
  }

  agentReply (token: string, clientId: string, text: string): UpstreamEvent {
    this.#core.checkToken(token)
    return this.#core.outreach.agentReply(token, clientId, text)
  }

  publish (token: string, clientId: string, type: string, body?: Record<string, unknown>): UpstreamEvent {
    this.#core.checkToken(token)
    return this.#core.publish(token, clientId, type, body)
  }

  campaign (token: string, clientIds: string[], text: string): void {
    this.#core.checkToken(token)
    this.#core.outreach.campaign(token, clientIds, text)
  }

  activePolls (token: string, clientId: string, cid?: string): number {
    return this.#core.polls.active(token, clientId, cid)
  }

  maxActivePolls (token: string, clientId: string, cid?: string): number {
    return this.#core.polls.peak(token, clientId, cid)
  }
}

/** Starts a Chat API emulator listening on `options.port` (a free port by default). */
export async function startEmulator (options: EmulatorOptions = {}): Promise<Emulator> {
  const settings = settingsOf(options)
  const emulator = new RunningEmulator(settings)
  await emulator.listen(settings.port, settings.host)
  return emulator
}

/** An origin a client can connect to, even when listening on every interface. */
function originOf (address: AddressInfo): string {
  if (address.family === 'IPv6') {
    const host = address.address === '::' ? '::1' : address.address
    return `http://[${host}]:${address.port}`
  }
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address
  return `http://${host}:${address.port}`
}
