/** Statuses of bot messages; NOT_SENT is the documented one, the rest are the emulator's choice. */
export const MESSAGE_STATUSES = ['NOT_SENT', 'SENT', 'DELIVERED', 'READ'] as const
export type MessageStatus = (typeof MESSAGE_STATUSES)[number]
