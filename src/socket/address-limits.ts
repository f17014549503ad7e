import { Counts } from '../lib/counts.js'
import { TokenBuckets } from '../lib/token-bucket.js'

export interface AddressLimitOptions {
  /** Open sockets one address may have at most. */
  maxSockets: number
  /** New clients one address may make: per second on average, and at once. */
  newClientsPerS: number
  newClientsBurst: number
  now?: () => number
}

/**
 * Limits per source address: open sockets, and new clients (anonymous
 * tickets) made. Behind a NAT or a company proxy thousands of visitors share
 * one address, so the defaults are generous; the point is that one machine
 * cannot take every socket or fill the instance with clients.
 */
export class AddressLimits {
  private readonly o: AddressLimitOptions
  private readonly now: () => number
  private readonly sockets = new Counts()
  private readonly newClients: TokenBuckets

  constructor (opts: AddressLimitOptions) {
    this.o = opts
    this.now = opts.now ?? Date.now
    this.newClients = new TokenBuckets(opts.newClientsPerS, opts.newClientsBurst)
  }

  claim (address: string): boolean { return this.sockets.claim(address, this.o.maxSockets) }
  release (address: string): void { this.sockets.release(address) }

  admitClient (address: string): boolean {
    return this.newClients.take(address, this.now())
  }
}
