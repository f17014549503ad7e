import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CloseCode, closeReason } from '../socket/errors.js'
import { EventStreamSocket } from '../socket/event-stream-socket.js'
import { MAX_CURSOR_CHARS } from '../socket/protocol.js'
import { Session, type SessionDeps } from '../socket/session.js'
import { instanceOf, streamKey, type StreamRouter } from '../socket/stream-router.js'

/** Whether a request may open a socket, and on which channel; the same answer for a WebSocket and an event stream. */
export type Admission = (req: FastifyRequest) => { channel: string } | { refused: CloseCode, why: Record<string, unknown> }

export interface EventStreamRouteOptions {
  deps: SessionDeps
  admit: Admission
  /** Whether a browser of this origin may use the bridge (no Origin: not a browser). */
  originAllowed: (origin: string | undefined) => boolean
  router: StreamRouter
  maxFrameBytes: number
}

/**
 * The HTTP transport, for clients that cannot open a WebSocket: the same
 * sessions and frames, over `GET /v1/sse` (Server-Sent Events, server to
 * client) and `POST /v1/sse` (client to server, the stream's key on the
 * first line and a frame on each line after it). Any instance takes a POST:
 * one that does not hold the stream forwards it through the router.
 */
export async function eventStreamRoutes (app: FastifyInstance, o: EventStreamRouteOptions): Promise<void> {
  const streams = new Map<string, EventStreamSocket>()
  o.router.onForwarded((key, body) => { streams.get(key)?.receive(body) })
  app.addHook('onClose', async () => { o.router.close() })
  // A key line, and a batch of frames as large as one frame may be, with room for the line breaks.
  const bodyLimit = 2 * o.maxFrameBytes + 1024
  // The body is the frames as text (text/plain needs no CORS preflight): read as it came, whatever its type says.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_req, body, done) => { done(null, body) })

  /** A browser of an allowed origin may read the answer: the SDK is often served from another origin than the bridge. */
  const cors = (req: FastifyRequest): Record<string, string> => {
    const origin = req.headers.origin
    return origin !== undefined && o.originAllowed(origin) ? { 'access-control-allow-origin': origin, vary: 'origin' } : {}
  }

  app.options('/v1/sse', async (req, reply) => {
    await reply.code(204).headers({
      ...cors(req),
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'content-type, last-event-id',
      'access-control-max-age': '600'
    }).send()
  })

  app.get('/v1/sse', async (req, reply) => {
    if (!app.bridge.ready) {
      return await reply.code(503).headers(cors(req)).send({ error: 'SHUTTING_DOWN', message: 'the bridge is not taking sockets now' })
    }
    const res = reply.hijack().raw
    const origin = req.headers.origin
    res.writeHead(200, {
      // Every origin may read its stream: a refused one reads only its close code, as a refused socket does.
      ...(origin === undefined ? {} : { 'access-control-allow-origin': origin, vary: 'origin' }),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // nginx buffers responses unless told not to; an event must not wait in a proxy.
      'x-accel-buffering': 'no'
    })
    const key = streamKey(o.router.instance)
    const socket = new EventStreamSocket(res, key, o.maxFrameBytes, lastEventId(req))
    // How long EventSource waits before it reconnects by itself; the key comes first, before any frame.
    res.write(`retry: 2000\nevent: stream\ndata: ${JSON.stringify({ key })}\n\n`)
    const admitted = o.admit(req)
    // Refused as a socket is, with a close code: a browser's EventSource cannot see the status of an answer.
    if ('refused' in admitted) {
      req.log.info(admitted.why, closeReason[admitted.refused])
      socket.close(admitted.refused, closeReason[admitted.refused])
      return
    }
    streams.set(key, socket)
    socket.once('close', () => { streams.delete(key) })
    // The session registers itself and lives as long as its stream.
    new Session(socket, admitted.channel, req.ip, o.deps)
  })

  app.post('/v1/sse', { bodyLimit }, async (req, reply) => {
    const origin = req.headers.origin
    if (!o.originAllowed(origin)) {
      req.log.info({ origin }, 'origin not allowed')
      return await refuse(reply, 403, 'FORBIDDEN_ORIGIN', 'origin not allowed')
    }
    reply.headers(cors(req))
    const body = typeof req.body === 'string' ? req.body : ''
    const nl = body.indexOf('\n')
    const key = (nl < 0 ? body : body.slice(0, nl)).trim()
    const frames = nl < 0 ? '' : body.slice(nl + 1)
    const local = streams.get(key)
    if (local !== undefined) {
      local.receive(frames)
      return await reply.code(204).send()
    }
    const instance = instanceOf(key)
    if (instance === undefined) return await refuse(reply, 400, 'BAD_REQUEST', 'the first line of the body must be the key of an event stream')
    let taken = false
    if (instance !== o.router.instance) {
      try {
        taken = await o.router.forward(instance, key, frames)
      } catch (err) {
        req.log.warn({ err: (err as Error).message }, 'could not forward frames to the instance of their stream')
        return await refuse(reply, 503, 'UNAVAILABLE', 'cannot reach the instance of this stream now; open a new stream')
      }
    }
    if (taken) return await reply.code(204).send()
    return await refuse(reply, 404, 'NO_SUCH_STREAM', 'no such event stream (it ended, or its instance stopped): open a new one and resume')
  })
}

async function refuse (reply: FastifyReply, status: number, error: string, message: string): Promise<void> {
  await reply.code(status).send({ error, message })
}

/** The `Last-Event-ID` header, or the `lastEventId` query parameter of clients that cannot set headers; one longer than a cursor may be is none. */
function lastEventId (req: FastifyRequest): string | undefined {
  const header = req.headers['last-event-id']
  const query = (req.query as Record<string, unknown>).lastEventId
  const id = typeof header === 'string' ? header : typeof query === 'string' ? query : undefined
  return id !== undefined && id !== '' && id.length <= MAX_CURSOR_CHARS ? id : undefined
}
