/**
 * Whether a client has an open socket anywhere: the offline hook posts an
 * event only for a client that has none. On its own an instance knows its
 * sockets; in a cluster, Redis keeps which instances have sockets of each
 * client (see cluster/presence-store.ts).
 */
export interface Presence {
  /** True when no instance has an open socket of the client (one that said hello). */
  away: (channel: string, clientId: string) => Promise<boolean>
}

/** The sockets of this process, as far as presence goes. */
export interface LocalSockets {
  hasClient: (channel: string, clientId: string) => boolean
}

/** Presence of a bridge on its own: its sockets are all the sockets there are. */
export function localPresence (sockets: LocalSockets): Presence {
  return { away: async (channel, clientId) => !sockets.hasClient(channel, clientId) }
}
