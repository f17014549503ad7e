import { createHash } from 'node:crypto'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Config } from '../config.js'

/** A connection to one Redis server (standalone or through Sentinel) or to a Redis Cluster. */
export type RedisClient = Redis | Cluster

export interface RedisSettings {
  url: string
  /** Extra ioredis options from REDIS_OPTIONS (Sentinel, TLS, credentials, …). */
  options: Record<string, unknown>
  cluster: boolean
  timeoutMs: number
}

export function redisSettings (config: Config): RedisSettings | undefined {
  if (config.REDIS_URL === undefined) return undefined
  return {
    url: config.REDIS_URL,
    options: config.REDIS_OPTIONS === undefined ? {} : JSON.parse(config.REDIS_OPTIONS) as Record<string, unknown>,
    cluster: config.REDIS_CLUSTER,
    timeoutMs: config.REDIS_TIMEOUT_MS
  }
}

/**
 * Opens a client. Commands fail within about REDIS_TIMEOUT_MS when Redis is
 * down or slow, instead of waiting in a queue: the bridge decides itself what
 * to do without Redis. The client reconnects by itself, forever.
 */
export function openRedis (s: RedisSettings, role: string): RedisClient {
  const base: RedisOptions = {
    commandTimeout: s.timeoutMs,
    connectTimeout: Math.max(s.timeoutMs, 1000),
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectionName: `chatapi-bridge-${role}`,
    ...s.options as RedisOptions
  }
  if (!s.cluster) return new Redis(s.url, base)
  const nodes = s.url.split(',').map((u) => {
    const url = new URL(u.trim())
    return { host: url.hostname, port: url.port === '' ? 6379 : Number(url.port) }
  })
  const first = new URL((s.url.split(',')[0] as string).trim())
  const redisOptions: RedisOptions = { ...base }
  if (first.password !== '') redisOptions.password = decodeURIComponent(first.password)
  if (first.username !== '') redisOptions.username = decodeURIComponent(first.username)
  if (first.protocol === 'rediss:') redisOptions.tls = {}
  return new Cluster(nodes, { redisOptions, ...s.options as ClusterOptions })
}

/** A Lua script run by its SHA, loaded on first use (and again after a Redis restart). */
export class Script {
  private readonly source: string
  private readonly sha: string
  private readonly keys: number

  constructor (source: string, keys: number) {
    this.source = source
    this.keys = keys
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run (redis: RedisClient, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (keys.length !== this.keys) throw new Error(`script wants ${this.keys} keys`)
    try {
      return await redis.evalsha(this.sha, this.keys, ...keys, ...args)
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err
      return await redis.eval(this.source, this.keys, ...keys, ...args)
    }
  }
}
