import type { Clock } from '../../lib/clock.js';
import { coalesceReads } from '../../lib/coalesce.js';

export interface CredentialStateOptions<Row> {
  /** The database read (findClientForGrant). */
  read(clientId: string): Promise<Row | undefined>;
  clock: Clock;
  /**
   * Whether the change feed is live (db/change-feed.ts): every change committed
   * now will be told within the bound. While false, every call reads through.
   */
  live(): boolean;
  /** Bound on credentials remembered; the oldest is dropped first. */
  maxEntries?: number;
  /**
   * Longest a row is served from memory without reading it again, whatever the
   * feed says: a backstop for a change made outside `m2m_clients`. (What
   * changes without any write, a secret's `expires_at`, needs no bound here:
   * the grant compares it with its clock at use.)
   */
  maxAgeMs?: number;
}

/**
 * The grant's credential state, from memory while the change feed is live.
 *
 * Rows of `findClientForGrant` are kept per client_id and served until a
 * notification names the client_id (every change to a credential writes its
 * `m2m_clients` row, and a trigger notifies), a catalog change (`*`), a feed
 * reset, or `maxAgeMs`. A row is kept only when the feed was
 * live for the whole read and nothing was invalidated meanwhile: a read that
 * raced a change is used once and not kept. Unknown client_ids are never kept
 * (a flood of made-up ids cannot evict real entries). Misses are coalesced.
 *
 * Rows are shared: callers must not mutate them.
 */
export function createCredentialState<Row>({ read, clock, live, maxEntries = 10_000, maxAgeMs = 60_000 }: CredentialStateOptions<Row>) {
  const entries = new Map<string, { row: Row; freshUntil: number }>();
  // Bumped by every invalidation: a read that saw it change keeps nothing.
  let generation = 0;
  let hits = 0;
  let misses = 0;

  const readThrough = coalesceReads(async (clientId: string) => {
    const before = generation;
    const wasLive = live();
    const row = await read(clientId);
    if (row && wasLive && live() && generation === before) {
      entries.delete(clientId);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(clientId, { row, freshUntil: clock() + maxAgeMs });
    }
    return row;
  });

  const forgetAll = () => {
    generation += 1;
    entries.clear();
  };
  const changed = (clientId: string) => {
    generation += 1;
    entries.delete(clientId);
  };

  return {
    /** The credential's grant state: from memory when current, else read (and kept when it may be). */
    get(clientId: string): Promise<Row | undefined> {
      const entry = entries.get(clientId);
      if (entry) {
        if (clock() < entry.freshUntil && live()) {
          hits += 1;
          return Promise.resolve(entry.row);
        }
        entries.delete(clientId);
      }
      misses += 1;
      return readThrough(clientId);
    },

    /** This credential changed (told by this instance's own write, or by the feed). */
    changed,

    /** Forgets every credential (a catalog change, the feed lost or back). */
    forgetAll,

    /** A notification payload of the credential channel: `{"id","client_id"}` or `*`. Anything else forgets all. */
    onNotify(payload: string): void {
      let clientId: unknown;
      try {
        clientId = payload === '*' ? undefined : (JSON.parse(payload) as { client_id?: unknown }).client_id;
      } catch {
        clientId = undefined;
      }
      if (typeof clientId === 'string') changed(clientId);
      else forgetAll();
    },

    /** Counters for metrics and tests. */
    stats: () => ({ entries: entries.size, hits, misses, live: live() }),
  };
}

export type CredentialState<Row> = ReturnType<typeof createCredentialState<Row>>;
