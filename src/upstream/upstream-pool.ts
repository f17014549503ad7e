import { Pool, type buildConnector } from 'undici'
import { H2Polls, type PollDispatcher } from './h2-polls.js'

/** How the upstream connections are made and bounded (UPSTREAM_* settings). */
export interface UpstreamPoolOptions {
  /** 'auto': HTTP/2 where TLS (ALPN) offers it; 'h2c': cleartext HTTP/2 by prior knowledge; 'off': HTTP/1.1. */
  http2: 'auto' | 'h2c' | 'off'
  /** Other calls over HTTP/2 too, as `http2` says; otherwise over HTTP/1.1, which answers short calls sooner. */
  callsHttp2?: boolean
  /** Long polls one HTTP/2 connection carries at most. */
  streams: number
  /** Connections for long polls at most. */
  pollConnections: number
  /** Connections for every other call at most. */
  callConnections: number
  /** The polls' HTTP/2 connections: how long connecting, or answering a ping after a poll timed out, may take (10 s). */
  sessionTimeoutMs?: number
}

export const DEFAULT_POOLS: UpstreamPoolOptions = { http2: 'auto', streams: 100, pollConnections: 4000, callConnections: 64 }

/**
 * The connections of one origin's long polls: multiplexed over HTTP/2 where
 * the upstream speaks it (h2c by prior knowledge, or h2 offered by TLS ALPN),
 * on `node:http2` itself (see H2Polls); over undici's HTTP/1.1 otherwise.
 */
export function pollPool (origin: string, o: UpstreamPoolOptions): PollDispatcher {
  const h1 = (): Pool => upstreamPool(origin, { ...o, http2: 'off' }, o.pollConnections)
  const tls = origin.startsWith('https:')
  if (o.http2 === 'off' || (o.http2 === 'auto' && !tls)) return h1()
  return new H2Polls(origin, { streams: o.streams, connections: o.pollConnections, tls, timeoutMs: o.sessionTimeoutMs, fallback: h1 })
}

/**
 * The connections of one origin's other calls, apart from the polls so that
 * none waits behind a held poll. undici sends a non-idempotent request
 * (POST) on a connection only when nothing else runs on it, so calls take
 * one stream each.
 */
export function callPool (origin: string, o: UpstreamPoolOptions): Pool {
  return upstreamPool(origin, o.callsHttp2 === true ? o : { ...o, http2: 'off' }, o.callConnections)
}

/**
 * A bounded pool of keep-alive connections to one upstream origin, over
 * HTTP/2 where `o.http2` allows it. A connection carries one request at a
 * time: undici would otherwise pipeline HTTP/1.1 requests one behind
 * another (the long polls multiplex over HTTP/2 in H2Polls instead).
 */
function upstreamPool (origin: string, o: UpstreamPoolOptions, connections: number): Pool {
  return new Pool(origin, {
    connections,
    allowH2: o.http2 !== 'off',
    // useH2c is read by undici's connector but missing from its types.
    connect: (o.http2 === 'h2c' ? { useH2c: true } : {}) as buildConnector.BuildOptions,
    keepAliveTimeout: 30_000
  })
}
