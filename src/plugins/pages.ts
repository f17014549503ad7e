import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export interface ClientRouteOptions { demoPage: boolean }

/**
 * Both dist/plugins/pages.js and src/plugins/pages.ts (under the test
 * runner) sit two levels below the package root, so one path works for both.
 */
const root = new URL('../../', import.meta.url)
/**
 * The browser build of the SDK: the folder of @chatapi-bridge/client's entry,
 * wherever npm put the package (a workspace link here, node_modules in an
 * install). Its files import each other as ./x.js, so they load as they are.
 */
const sdkDir = fileURLToPath(new URL('.', import.meta.resolve('@chatapi-bridge/client')))
/** The demo page is plain HTML, CSS and JS, served from the sources: tsc does not copy them to dist. */
const demoDir = fileURLToPath(new URL('src/demo/', root))

/**
 * Names of the files served: one plain name, no path, so that neither `..`
 * nor an encoded slash can reach outside the folder.
 */
const SDK_FILE = /^[a-z0-9-]+\.js(?:\.map)?$/
const DEMO_FILE = /^[a-z0-9-]+\.(?:js|css|svg)$/

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  map: 'application/json',
  html: 'text/html; charset=utf-8'
}

/** The page talks to its own bridge only, and shows images from the bot (https or inline). */
function pagePolicy (host: string | undefined): string {
  // 'self' covers same-origin sockets only in newer browsers; name them for the rest.
  const sockets = host !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(host) ? ` ws://${host} wss://${host}` : ''
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    'img-src \'self\' data: https:',
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
}

async function sendFile (reply: FastifyReply, dir: string, name: string): Promise<FastifyReply> {
  let body: Buffer
  try {
    body = await readFile(dir + name)
  } catch {
    return await reply.code(404).send({ error: 'NOT_FOUND', message: `no file ${name}` })
  }
  const ext = name.slice(name.lastIndexOf('.') + 1)
  return await reply
    .type(TYPES[ext] ?? 'application/octet-stream')
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff')
    .send(body)
}

/** The browser build of the client SDK at /sdk/, and, when enabled, the demo chat page at /. */
export async function clientRoutes (app: FastifyInstance, o: ClientRouteOptions): Promise<void> {
  app.get<{ Params: { file: string } }>('/sdk/:file', async (req, reply) => {
    if (!SDK_FILE.test(req.params.file)) return await reply.code(404).send({ error: 'NOT_FOUND', message: 'no such file' })
    // A site on another origin imports the SDK from its bridge, and module scripts load only with CORS. The files are
    // public code, sent without credentials, so any origin may read them; ALLOWED_ORIGINS guards the socket.
    reply.header('access-control-allow-origin', '*').header('cross-origin-resource-policy', 'cross-origin')
    return await sendFile(reply, sdkDir, req.params.file)
  })

  if (!o.demoPage) return

  app.get('/', async (req: FastifyRequest, reply) => {
    reply.header('content-security-policy', pagePolicy(req.headers.host))
    return await sendFile(reply, demoDir, 'index.html')
  })
  app.get<{ Params: { file: string } }>('/demo/:file', async (req, reply) => {
    if (!DEMO_FILE.test(req.params.file)) return await reply.code(404).send({ error: 'NOT_FOUND', message: 'no such file' })
    return await sendFile(reply, demoDir, req.params.file)
  })
}
