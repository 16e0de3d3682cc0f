/** Milliseconds since the epoch. Injected so tests control time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** A timestamp as the API shows it: ISO 8601, UTC; null (never, not set) stays null. */
export function iso(d: Date): string;
export function iso(d: Date | null): string | null;
export function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}
