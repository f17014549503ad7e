import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { chatRoutes } from './chat-routes.js'
import { clientRoutes } from './client-routes.js'
import type { EmulatorCore } from './core.js'
import { installErrorReplies } from './errors.js'
import { createH2cServer, type RequestHandler } from './h2c-server.js'
import { operatorRoutes } from './operator-routes.js'
import { isRouteName, routeNameOf } from './paths.js'
import { RequestRecorder } from './request-recorder.js'

export type EmulatorApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>

export interface AppSettings {
  logger: boolean | object
  /** Serve h2c and HTTP/1.1 on one port instead of HTTP/1.1 alone. */
  http2: boolean
  http2MaxStreams: number
}

/** The emulator's HTTP face, without listen(), so that it is built the same way everywhere. */
export function buildApp (core: EmulatorCore, settings: AppSettings): EmulatorApp {
  // Fastify types its instance by server kind; the HTTP/2 compat request and
  // response have the HTTP/1.1 API the routes use, so one type serves both.
  const h2 = settings.http2
    ? { http2: true, serverFactory: (handler: RequestHandler) => createH2cServer(handler, settings.http2MaxStreams) }
    : {}
  const app = Fastify({
    ...(h2 as object),
    logger: settings.logger,
    // close() must not wait for keep-alive sockets of pollers that were just answered.
    forceCloseConnections: true,
    exposeHeadRoutes: false,
    // Query values stay strings and bodies are not bent into shape: a wrong type is a 400.
    ajv: { customOptions: { coerceTypes: false } }
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.removeContentTypeParser('text/plain')
  installErrorReplies(app)

  // Record, then faults, then the token: a fault hits even a request with a bad
  // token, and the record shows every request as it came, faulted or not.
  const recorder = new RequestRecorder(core.requests)
  app.addHook('onError', async request => recorder.record(request))
  app.addHook('preValidation', async (request, reply) => {
    recorder.record(request)
    const route = routeNameOf(request.method, request.routeOptions.url)
    if (isRouteName(route)) await core.injector.apply(route, request, reply)
    const { token } = request.params as { token?: string }
    if (!reply.sent && token !== undefined) core.checkToken(token)
  })

  // A live server's Date header comes from the clock its timestamps come from: so does ours.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('date', new Date(core.clock.now()).toUTCString())
  })

  chatRoutes(app, core)
  clientRoutes(app, core)
  operatorRoutes(app, core)
  return app
}
