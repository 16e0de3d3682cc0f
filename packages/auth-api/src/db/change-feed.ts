import { randomBytes } from 'node:crypto';
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
   * connected, listening, and a heartbeat notification sent less than
   * `leaseMs` ago came back over LISTEN. While false, callers must read
   * through to the database.
   */
  live(): boolean;
  close(): Promise<void>;
}

export interface PostgresChangeFeedOptions {
  connectionString: string;
  channel: string;
  handlers: ChangeFeedHandlers;
  /** A heartbeat notification this often. */
  heartbeatMs?: number;
  /** How long after a heartbeat was sent the feed counts as live once it has come back: the staleness bound. */
  leaseMs?: number;
  /** No heartbeat back for this long while connected: the connection is deaf, dropped and opened again. */
  deafAfterMs?: number;
  /** Reconnect delays: doubling from `minMs` up to `maxMs`, with jitter. */
  reconnect?: { minMs: number; maxMs: number };
}

/** `application_name` of the connections that send the feeds' heartbeats. */
export const CHANGE_FEED_HEARTBEAT_APPLICATION_NAME = 'auth-api change feed heartbeat';

/**
 * LISTEN on one dedicated PostgreSQL connection (a `pg.Client`, never one of
 * the pool's), reconnecting with backoff when it is lost.
 *
 * Liveness is a lease proven end to end, the way a change arrives: every
 * `heartbeatMs` a second connection of the feed's own (one, not the pool's,
 * so a busy pool cannot starve it) sends a NOTIFY on a channel only this feed
 * listens on, and the feed is live only until `leaseMs` after the last
 * heartbeat that came back over LISTEN was sent. PostgreSQL delivers
 * notifications in commit order, so a heartbeat coming back means every change
 * committed before it was sent has been told. A connection that answers
 * queries but never receives notifications (a half-open TCP connection, or a
 * pooler in transaction mode that lends the LISTEN session to others between
 * statements and drops what arrives meanwhile) therefore never counts as
 * live, and after `deafAfterMs` without a heartbeat it is dropped and opened
 * again. Each time it becomes live again (a reconnect, or a late heartbeat)
 * it calls `onReset` first, so nothing learned before a gap is trusted after it.
 */
export function openPostgresChangeFeed({
  connectionString,
  channel,
  handlers,
  heartbeatMs = 250,
  leaseMs = 1000,
  deafAfterMs = 5000,
  reconnect = { minMs: 100, maxMs: 5000 },
}: PostgresChangeFeedOptions): ChangeFeed {
  // Lower case: LISTEN takes it quoted (as is), pg_notify as a string.
  const heartbeatChannel = `${channel}_hb_${randomBytes(8).toString('hex')}`;
  const sender = new pg.Pool({ connectionString, max: 1, connectionTimeoutMillis: 5000, query_timeout: 5000, application_name: CHANGE_FEED_HEARTBEAT_APPLICATION_NAME });
  sender.on('error', () => {});
  let closed = false;
  let client: pg.Client | undefined;
  let connected = false;
  let told = false;
  let leaseUntil = Number.NEGATIVE_INFINITY;
  let lastHeard = 0;
  let failures = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let sending = false;
  let seq = 0;
  // Heartbeats sent and not yet back: sequence number → when sent.
  const sent = new Map<string, number>();

  const lost = (from: pg.Client, err?: unknown) => {
    if (client !== from) return;
    client = undefined;
    const wasLive = told;
    connected = false;
    told = false;
    leaseUntil = Number.NEGATIVE_INFINITY;
    sent.clear();
    clearInterval(heartbeat);
    from.removeAllListeners('notification');
    from.end().catch(() => {});
    handlers.onReset();
    if (wasLive || failures === 0) handlers.onStateChange?.('down', err);
    if (closed) return;
    failures += 1;
    const ceiling = Math.min(reconnect.maxMs, reconnect.minMs * 2 ** Math.min(failures - 1, 16));
    retry = setTimeout(() => void connect(), ceiling / 2 + Math.random() * (ceiling / 2));
    retry.unref();
  };

  /** A heartbeat came back over LISTEN: the lease runs from when it was sent. */
  function heard(from: pg.Client, payload: string) {
    const sentAt = sent.get(payload);
    if (sentAt === undefined || client !== from) return;
    for (const [key, at] of sent) if (at <= sentAt) sent.delete(key);
    const now = performance.now();
    lastHeard = now;
    // Back after the lease ran out (or the first since connecting): notifications may have been missed, forget first.
    if (now >= leaseUntil) handlers.onReset();
    leaseUntil = Math.max(leaseUntil, sentAt + leaseMs);
    if (!told) {
      told = true;
      failures = 0;
      handlers.onStateChange?.('live');
    }
  }

  async function beat(from: pg.Client) {
    if (client !== from) return;
    if (performance.now() - lastHeard > deafAfterMs) {
      // The code is what the server's warning shows (it logs an error's name and code only).
      const err = Object.assign(new Error(`no heartbeat came back over LISTEN for ${deafAfterMs} ms: notifications do not reach this connection (half-open, or a pooler in transaction mode in between?)`), { code: 'CHANGE_FEED_DEAF' });
      lost(from, err);
      return;
    }
    if (sending) return;
    sending = true;
    const key = String((seq += 1));
    sent.set(key, performance.now());
    try {
      await sender.query('select pg_notify($1, $2)', [heartbeatChannel, key]);
    } catch {
      // Not sent: never comes back, so the lease runs out on its own (and the listener's own error, if any, is told there).
      sent.delete(key);
    } finally {
      sending = false;
    }
  }

  async function connect() {
    if (closed) return;
    const next = new pg.Client({ connectionString, connectionTimeoutMillis: 5000, keepAlive: true, application_name: CHANGE_FEED_APPLICATION_NAME });
    client = next;
    next.on('error', (err) => lost(next, err));
    next.on('end', () => lost(next));
    next.on('notification', (message) => {
      if (client !== next) return;
      if (message.channel === heartbeatChannel) heard(next, message.payload ?? '');
      else if (message.channel === channel) handlers.onNotify(message.payload ?? '');
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${next.escapeIdentifier(channel)}; LISTEN ${next.escapeIdentifier(heartbeatChannel)}`);
      if (client !== next || closed) return;
      // Listening now; live once the first heartbeat comes back (which forgets what came before).
      connected = true;
      lastHeard = performance.now();
      heartbeat = setInterval(() => void beat(next), heartbeatMs);
      heartbeat.unref();
      void beat(next);
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
      await sender.end().catch(() => {});
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
