import { performance } from 'node:perf_hooks';
import pg from 'pg';

/** `application_name` of the listening connections, as pg_stat_activity shows them. */
export const CHANGE_FEED_APPLICATION_NAME = 'auth-api change feed';

/** The channel the `m2m_clients` and catalog triggers notify (migration 2026-11-26-017-cluster-state). */
export const CREDENTIAL_CHANNEL = 'auth_credential_changes';

export interface ChangeFeedHandlers {
  /** A notification's payload, in commit order. */
  onNotify(payload: string): void;
  /**
   * Whatever was learned before may be stale: called when the feed is lost and
   * again once it is back (LISTEN in place), so the caller forgets cached state.
   */
  onReset(): void;
  /** For logs and metrics: the feed went live or down (with why). */
  onStateChange?(state: 'live' | 'down', err?: unknown): void;
}

export interface ChangeFeed {
  /**
   * True while every change committed now will be told within the bound:
   * connected, listening, and the connection answered a heartbeat sent less
   * than `leaseMs` ago. While false, callers must read through to the database.
   */
  live(): boolean;
  close(): Promise<void>;
}

export interface PostgresChangeFeedOptions {
  connectionString: string;
  channel: string;
  handlers: ChangeFeedHandlers;
  /** A heartbeat query on the listening connection this often. */
  heartbeatMs?: number;
  /** How long after a heartbeat was sent the feed counts as live without another answer: the staleness bound. */
  leaseMs?: number;
  /** Reconnect delays: doubling from `minMs` up to `maxMs`, with jitter. */
  reconnect?: { minMs: number; maxMs: number };
}

/**
 * LISTEN on one dedicated PostgreSQL connection (a `pg.Client`, never one of
 * the pool's), reconnecting with backoff when it is lost.
 *
 * A dead connection is not always noticed (a half-open TCP connection looks
 * idle), so liveness is a lease: a heartbeat query runs on the listening
 * connection every `heartbeatMs`, and the feed is live only until `leaseMs`
 * after the last answered one was sent. A change committed while the feed was
 * live is therefore told, or the feed stops being live, within `leaseMs`. Each
 * time it becomes live again (a reconnect, or a late heartbeat answered) it
 * calls `onReset` first, so nothing learned before a gap is trusted after it.
 */
export function openPostgresChangeFeed({ connectionString, channel, handlers, heartbeatMs = 250, leaseMs = 1000, reconnect = { minMs: 100, maxMs: 5000 } }: PostgresChangeFeedOptions): ChangeFeed {
  let closed = false;
  let client: pg.Client | undefined;
  let connected = false;
  let leaseUntil = Number.NEGATIVE_INFINITY;
  let failures = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let probing = false;

  const lost = (from: pg.Client, err?: unknown) => {
    if (client !== from) return;
    client = undefined;
    const wasConnected = connected;
    connected = false;
    leaseUntil = Number.NEGATIVE_INFINITY;
    clearInterval(heartbeat);
    from.removeAllListeners('notification');
    from.end().catch(() => {});
    handlers.onReset();
    if (wasConnected || failures === 0) handlers.onStateChange?.('down', err);
    if (closed) return;
    failures += 1;
    const ceiling = Math.min(reconnect.maxMs, reconnect.minMs * 2 ** Math.min(failures - 1, 16));
    retry = setTimeout(() => void connect(), ceiling / 2 + Math.random() * (ceiling / 2));
    retry.unref();
  };

  async function probe(from: pg.Client) {
    if (probing || client !== from) return;
    probing = true;
    const sentAt = performance.now();
    try {
      await from.query('select 1');
      if (client !== from) return;
      // An answer after the lease ran out: notifications may have been late too, forget and start over.
      if (performance.now() >= leaseUntil) handlers.onReset();
      leaseUntil = sentAt + leaseMs;
    } catch (err) {
      lost(from, err);
    } finally {
      probing = false;
    }
  }

  async function connect() {
    if (closed) return;
    const next = new pg.Client({ connectionString, connectionTimeoutMillis: 5000, keepAlive: true, application_name: CHANGE_FEED_APPLICATION_NAME });
    client = next;
    next.on('error', (err) => lost(next, err));
    next.on('end', () => lost(next));
    next.on('notification', (message) => {
      if (client === next && message.channel === channel) handlers.onNotify(message.payload ?? '');
    });
    try {
      await next.connect();
      const sentAt = performance.now();
      await next.query(`LISTEN ${next.escapeIdentifier(channel)}`);
      if (client !== next || closed) return;
      // Listening now: every change committed from here on is told. What came before is forgotten.
      handlers.onReset();
      connected = true;
      failures = 0;
      leaseUntil = sentAt + leaseMs;
      heartbeat = setInterval(() => void probe(next), heartbeatMs);
      heartbeat.unref();
      handlers.onStateChange?.('live');
    } catch (err) {
      lost(next, err);
    }
  }

  void connect();

  return {
    live: () => connected && performance.now() < leaseUntil,
    async close() {
      closed = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      const current = client;
      client = undefined;
      connected = false;
      if (current) await current.end().catch(() => {});
    },
  };
}

/** What PGlite offers for LISTEN (its own `listen`, one process, notifications after each commit). */
export interface PgliteListener {
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * LISTEN on the embedded PGlite: one process, one connection, nothing to lose.
 * Live once the listener is in place.
 */
export function openPgliteChangeFeed(pglite: PgliteListener, channel: string, handlers: ChangeFeedHandlers): ChangeFeed {
  let live = false;
  let closed = false;
  const unlisten = pglite.listen(channel, (payload) => handlers.onNotify(payload)).then((stop) => {
    if (!closed) {
      handlers.onReset();
      live = true;
      handlers.onStateChange?.('live');
    }
    return stop;
  });
  unlisten.catch((err) => handlers.onStateChange?.('down', err));
  return {
    live: () => live,
    async close() {
      closed = true;
      live = false;
      const stop = await unlisten.catch(() => undefined);
      await stop?.().catch(() => {});
    },
  };
}
