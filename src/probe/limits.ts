/**
 * The probe's bounds. It talks to a live channel with its real token, so it
 * must cost that channel little and end whatever the server does: a fixed
 * number of requests, each with a timeout, inside one deadline.
 */

/** Requests one probe makes at most; it needs about 30. */
export const MAX_REQUESTS = 40

/** Default wait for an empty poll to be answered before reporting "holds at least …". */
export const DEFAULT_HOLD_LIMIT_MS = 30_000

/** Time the whole probe may take beyond the hold limit. */
export const REST_BUDGET_MS = 45_000

/** Timeout of every call that is not a poll expected to be held. */
export const CALL_TIMEOUT_MS = 10_000

/** An empty poll answered within this was not held (the bridge's own threshold). */
export const AT_ONCE_MS = 1000

/**
 * How long a poll that should answer at once, if it answers at all, is given.
 * Past it, the server has nothing for that poll and is holding it.
 */
export const QUICK_MS = 3000

/** How long the probe waits for its messages' bot answers to show in /events. */
export const COLLECT_MS = 4000
export const COLLECT_POLLS = 6
/** Pause between two of those polls: the probe never polls in a tight loop. */
export const COLLECT_PAUSE_MS = 600

/** Time given to two held polls to reach the server before an event is made for them. */
export const SETTLE_MS = 500

/** A history span this far after the probe's messages holds none of them. */
export const FUTURE_MS = 86_400_000
