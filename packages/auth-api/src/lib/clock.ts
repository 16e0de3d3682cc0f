/** Milliseconds since the epoch. Injected so tests control time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
