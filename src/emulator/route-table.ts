/** Stable names of the Chat API routes, used by request records, stats and faults. */
export type RouteName =
  | 'send' | 'sendGet' | 'sendAsync' | 'events' | 'history'
  | 'getState' | 'setState' | 'getStatus' | 'setStatus' | 'setStatuses' | 'unreadCount'

interface RouteSpec {
  method: 'GET' | 'POST'
  url: string
}

/** The Chat API as the emulator serves it: one line per route, named as request records and faults name it. */
export const chatRoutes = {
  send: { method: 'POST', url: '/chatapi/:token' },
  sendGet: { method: 'GET', url: '/chatapi/:token' },
  sendAsync: { method: 'POST', url: '/chatapi/:token/async' },
  events: { method: 'GET', url: '/chatapi/:token/events' },
  history: { method: 'GET', url: '/chatapi/:token/client/:clientId/history' },
  getState: { method: 'GET', url: '/chatapi/:token/client/:clientId/state' },
  setState: { method: 'POST', url: '/chatapi/:token/client/:clientId/state' },
  getStatus: { method: 'GET', url: '/chatapi/:token/client/:clientId/message/:questionId/status' },
  setStatus: { method: 'POST', url: '/chatapi/:token/client/:clientId/message/:questionId/status' },
  setStatuses: { method: 'POST', url: '/chatapi/:token/client/:clientId/message-statuses' },
  unreadCount: { method: 'GET', url: '/chatapi/:token/client/:clientId/message-not-read-count' }
} as const satisfies Record<RouteName, RouteSpec>

/** Where the operator routes live; they are not part of the Chat API and never take faults. */
export const OPERATOR_PREFIX = '/operator'

const byMethodAndUrl = new Map<string, RouteName>(
  Object.entries(chatRoutes).map(([name, spec]) => [`${spec.method} ${spec.url}`, name as RouteName])
)

/** The stable name of the route a request matched: a RouteName, 'operator' or 'notFound'. */
export function routeNameOf (method: string, routeUrl: string | undefined): string {
  if (routeUrl === undefined) return 'notFound'
  if (routeUrl.startsWith(OPERATOR_PREFIX)) return 'operator'
  return byMethodAndUrl.get(`${method} ${routeUrl}`) ?? 'notFound'
}

export function isRouteName (name: string): name is RouteName {
  return Object.hasOwn(chatRoutes, name)
}
