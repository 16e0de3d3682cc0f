/**
 * Concurrent reads of one key share a database round trip, without ever
 * serving a caller state read before it asked: a caller that arrives while a
 * read is under way does not join it (it began earlier, so it might miss a
 * change committed since) but waits for the next read, which every caller
 * arriving meanwhile shares. So each caller sees state read after it arrived,
 * and at most two reads per key are pending at once, however many callers.
 *
 * The token endpoint reads a credential's state on every grant; a fleet of
 * replicas renewing one credential together costs one read per round trip
 * instead of one per replica. Results are shared: callers must not mutate them.
 */
export function coalesceReads<T>(read: (key: string) => Promise<T>): (key: string) => Promise<T> {
  const slots = new Map<string, { current: Promise<T>; next?: Promise<T> }>();
  const ignore = () => {};

  function start(key: string): Promise<T> {
    const slot: { current: Promise<T>; next?: Promise<T> } = { current: read(key) };
    slots.set(key, slot);
    const settle = () => {
      if (slots.get(key) === slot && slot.next === undefined) slots.delete(key);
    };
    slot.current.then(settle, settle);
    return slot.current;
  }

  return (key) => {
    const slot = slots.get(key);
    if (!slot) return start(key);
    slot.next ??= slot.current.then(ignore, ignore).then(() => start(key));
    return slot.next;
  };
}
