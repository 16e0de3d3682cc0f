import type { Dispatcher } from 'undici';
import { isObject, sendJson } from './http.js';

/** Something that hands out a service token for the feed: a ServiceTokenManager, or any object like it. */
export interface FeedTokenSource {
  getToken(): Promise<string>;
  /** Called with a token the feed refused (401), so the next poll gets a fresh one. */
  invalidate?(token: string): unknown;
}

/** What the revocation poller reports (for logs and metrics); a listener's errors are ignored. */
export type RevocationEvent =
  /** The first complete copy of the feed was loaded. */
  | { type: 'ready'; clients: number; tokens: number }
  /**
   * A poll failed; the last copy stays in use. `staleMs`: time since the last complete sync
   * (Infinity before the first one: until then every token is refused, reason `revocation_unavailable`).
   */
  | { type: 'sync_failed'; error: Error; staleMs: number }
  /** A poll succeeded after failures. */
  | { type: 'recovered'; staleMs: number }
  /** No complete sync for `failClosedAfterMs` (counted from boot): every token is refused (reason `revocation_unavailable`) until one succeeds. */
  | { type: 'fail_closed'; staleMs: number };

export interface RevocationFeedOptions {
  url: URL;
  token: FeedTokenSource | (() => string | Promise<string>);
  intervalMs: number;
  timeoutMs: number;
  failClosedAfterMs: number | undefined;
  /** Entries are kept this long after not_before (the longest token lifetime a verifier accepts). */
  maxTokenLifetimeSec: number;
  dispatcher: Dispatcher | undefined;
  now(): number;
  onEvent: ((event: RevocationEvent) => void) | undefined;
  /** Called on every change that can refuse a token (a new entry, the fail-closed switch): the verifier empties its cache. */
  onChange: () => void;
}

/** Pages read in one sync at most (each ≤ 200 entries): a runaway feed cannot hold the poller. */
const MAX_PAGES = 1000;

/**
 * A local copy of the server's revocation feed (`GET /api/v1/oauth/revocations`),
 * kept by polling every `intervalMs`. Lookups are two Map reads; `onChange`
 * is called whenever the answer for some token may have changed, so verified
 * tokens can be cached between changes without being looked up again.
 */
export class RevocationFeed {
  /**
   * client_id → notBefore (s): its tokens with a lower iat are revoked (Infinity: all of them);
   * until (s): when the entry may be forgotten, as no token it refuses can be live after.
   */
  readonly #clients = new Map<string, { notBefore: number; until: number }>();
  /** jti → exp (s). */
  readonly #tokens = new Map<string, number>();
  readonly #options: RevocationFeedOptions;
  readonly #closer = new AbortController();
  #cursor: string | undefined;
  /** The ETag of the feed's last page at #cursor (sent as If-None-Match from there). */
  #etag: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  /** -Infinity until the first complete sync: failClosedAfterMs counts from boot. */
  #lastSyncAt = Number.NEGATIVE_INFINITY;
  /** When the last sync failed (ms), so verifications waiting for the first one do not each start a poll. */
  #lastFailureAt = Number.NEGATIVE_INFINITY;
  #failing = false;
  #closed = false;
  /** Set once no sync succeeded for failClosedAfterMs (never without that option). */
  failedClosed = false;

  constructor(options: RevocationFeedOptions) {
    this.#options = options;
    this.#schedule(0);
  }

  /** Whether a complete copy of the feed was loaded once: until then every token waits for it or is refused. */
  get ready(): boolean {
    return this.#lastSyncAt !== Number.NEGATIVE_INFINITY;
  }

  /** Whether the token (by client_id, iat and jti) is revoked in the local copy. */
  isRevoked(clientId: string, iat: number, jti: unknown): boolean {
    const client = this.#clients.get(clientId);
    if (client !== undefined && iat < client.notBefore) return true;
    return typeof jti === 'string' && this.#tokens.has(jti);
  }

  /**
   * Before the first complete sync: waits for it (joining the poll under way, or starting one unless
   * one failed within intervalMs), at most timeoutMs; rejects when it fails or takes longer.
   */
  firstSync(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.#inflight === undefined && this.#options.now() - this.#lastFailureAt < this.#options.intervalMs) {
      return Promise.reject(new Error('the revocation feed has not been read yet'));
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the revocation feed did not answer in time')), this.#options.timeoutMs);
      timer.unref();
      this.sync()
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }

  /** Polls now (joining a poll under way); rejects when it fails. */
  sync(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the verifier is closed'));
    this.#inflight ??= this.#syncOnce().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#closer.abort(new Error('the verifier is closed'));
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    // unref'd: a verifier never keeps the process alive.
    this.#timer = setTimeout(() => {
      this.sync().then(
        () => this.#schedule(this.#options.intervalMs),
        () => this.#schedule(this.#options.intervalMs),
      );
    }, delayMs);
    this.#timer.unref();
  }

  async #syncOnce(): Promise<void> {
    try {
      for (let page = 0; page < MAX_PAGES; page++) {
        if (!(await this.#fetchPage())) break;
      }
    } catch (err) {
      if (this.#closed) throw err;
      const now = this.#options.now();
      const staleMs = now - this.#lastSyncAt;
      this.#lastFailureAt = now;
      this.#failing = true;
      this.#emit({ type: 'sync_failed', error: err instanceof Error ? err : new Error(String(err)), staleMs });
      const limit = this.#options.failClosedAfterMs;
      if (limit !== undefined && staleMs >= limit && !this.failedClosed) {
        this.failedClosed = true;
        this.#options.onChange();
        this.#emit({ type: 'fail_closed', staleMs });
      }
      throw err;
    }
    const now = this.#options.now();
    const first = !this.ready;
    if (this.#failing) this.#emit({ type: 'recovered', staleMs: now - this.#lastSyncAt });
    this.#failing = false;
    this.#lastSyncAt = now;
    if (this.failedClosed) {
      this.failedClosed = false;
      this.#options.onChange();
    }
    this.#prune(now);
    if (first) this.#emit({ type: 'ready', clients: this.#clients.size, tokens: this.#tokens.size });
  }

  /** One page; true when another is waiting. */
  async #fetchPage(): Promise<boolean> {
    const source = this.#options.token;
    // Bounded like the request: a token source that never answers would otherwise stall the
    // poller for good, silently (no sync_failed, and failClosedAfterMs never reached).
    const token = await this.#bounded(Promise.resolve().then(() => (typeof source === 'function' ? source() : source.getToken())));
    if (typeof token !== 'string' || token === '') throw new Error('the revocation feed token source returned no token');
    const url = new URL(this.#options.url);
    if (this.#cursor !== undefined) url.searchParams.set('since', this.#cursor);
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${token}` };
    if (this.#etag !== undefined) headers['if-none-match'] = this.#etag;
    const response = await sendJson(url, {
      method: 'GET',
      headers,
      dispatcher: this.#options.dispatcher,
      timeoutMs: this.#options.timeoutMs,
      signal: this.#closer.signal,
      attempt: 1,
    });
    if (response.status === 304) {
      // Only an answer to our If-None-Match: a 304 to a request without one (a proxy's, a broken
      // server's) says nothing about the feed and must not count as a read (it would make an empty copy ready).
      if (headers['if-none-match'] === undefined) throw new Error('the revocation feed answered 304 to a request without If-None-Match');
      return false;
    }
    if (response.status === 401 && typeof source !== 'function') source.invalidate?.(token);
    if (response.status !== 200) throw new Error(`the revocation feed answered ${response.status}`);
    const page = readPage(response.body);
    if (page === undefined) throw new Error('the revocation feed answered with a malformed body');
    let added = false;
    const lifetimeSec = this.#options.maxTokenLifetimeSec + 60;
    // In seq order: a later entry for a client_id replaces the earlier one (enabled again after a disable).
    for (const { client_id, revoked_at, not_before } of page.clients) {
      const notBefore = not_before ?? Number.POSITIVE_INFINITY;
      if (this.#clients.get(client_id)?.notBefore !== notBefore) added = true;
      this.#clients.set(client_id, { notBefore, until: (not_before ?? Math.floor(Date.parse(revoked_at) / 1000)) + lifetimeSec });
    }
    for (const { jti, exp } of page.tokens) {
      if (!this.#tokens.has(jti)) {
        this.#tokens.set(jti, exp);
        added = true;
      }
    }
    if (added) this.#options.onChange();
    const etag = response.headers.etag;
    // Set together with the cursor, so the ETag always belongs to the page at #cursor.
    this.#etag = typeof etag === 'string' && !page.has_more ? etag : undefined;
    this.#cursor = page.cursor;
    return page.has_more;
  }

  /** `promise`, or a rejection after timeoutMs (or on close), whichever comes first. */
  #bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (reason: unknown) => {
        clearTimeout(timer);
        this.#closer.signal.removeEventListener('abort', onAbort);
        reject(reason);
      };
      const onAbort = () => fail(this.#closer.signal.reason);
      const timer = setTimeout(() => fail(new Error(`the revocation feed token source did not answer within ${this.#options.timeoutMs} ms`)), this.#options.timeoutMs);
      timer.unref();
      if (this.#closer.signal.aborted) onAbort();
      else this.#closer.signal.addEventListener('abort', onAbort, { once: true });
      promise.then((value) => {
        clearTimeout(timer);
        this.#closer.signal.removeEventListener('abort', onAbort);
        resolve(value);
      }, fail);
    });
  }

  /** Forgets entries no live token can match any more. */
  #prune(now: number): void {
    const nowSec = Math.floor(now / 1000);
    for (const [jti, exp] of this.#tokens) if (exp < nowSec - 60) this.#tokens.delete(jti);
    for (const [clientId, { until }] of this.#clients) if (until < nowSec) this.#clients.delete(clientId);
  }

  #emit(event: RevocationEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // ignored: see RevocationEvent
    }
  }
}

interface FeedPage {
  cursor: string;
  has_more: boolean;
  /** not_before null: every token of client_id is refused (revoked or disabled). */
  clients: { client_id: string; revoked_at: string; not_before: number | null }[];
  tokens: { jti: string; exp: number }[];
}

function readPage(body: unknown): FeedPage | undefined {
  if (!isObject(body) || typeof body.cursor !== 'string' || typeof body.has_more !== 'boolean' || !Array.isArray(body.clients) || !Array.isArray(body.tokens)) return undefined;
  const clients = body.clients.every(
    (c) => isObject(c) && typeof c.client_id === 'string' && typeof c.revoked_at === 'string' && Number.isFinite(Date.parse(c.revoked_at)) && (c.not_before === null || Number.isSafeInteger(c.not_before)),
  );
  const tokens = body.tokens.every((t) => isObject(t) && typeof t.jti === 'string' && Number.isSafeInteger(t.exp));
  return clients && tokens ? (body as unknown as FeedPage) : undefined;
}
