import { createHmac, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { OAuthError } from '../../errors.js';
import type { Clock } from '../../lib/clock.js';
import { coalesceReads } from '../../lib/coalesce.js';
import { type ClientSecretHasher, isLiveSecret, secretHint } from '../../lib/client-secret-hash.js';
import type { VerifiedSecret, VerifiedSecretCache } from '../../lib/secret-cache.js';
import { addressKey, networkKey, type FailureThrottle } from '../../lib/throttle.js';
import { BudgetExceededError, type WorkBudget } from '../../lib/work-budget.js';
import type { TokenIssuer } from '../../lib/tokens.js';
import { clientIdSchema } from '../m2m-clients/m2m-clients.schemas.js';
import { touchSecretUsed } from '../m2m-clients/client-secrets.repository.js';
import { findClientForGrant, type GrantClientRow, type GrantSecret } from '../m2m-clients/m2m-clients.repository.js';
import type { ClientCredentials } from './client-auth.js';

/** RFC 6749 §3.3 scope-token characters. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export interface OAuthDeps {
  db: Kysely<Database>;
  /** Verifies client secrets with the algorithm each was stored with; its burn is one bcrypt compare. */
  secrets: ClientSecretHasher;
  /** Bounds bcrypt work across the server; a shed check answers 503. */
  budget: WorkBudget;
  tokens: TokenIssuer;
  secretCache: VerifiedSecretCache;
  /** Failed client authentication, per address and per (client_id, address). */
  throttle: FailureThrottle;
  clock: Clock;
  serviceTokenTtlSec: number;
  defaultAudience: string;
  /**
   * The credential state a grant uses (findClientForGrant's row): by default read on every grant
   * (coalesced); the app passes its credential-state cache (./credential-state.ts).
   */
  readClient?: (clientId: string) => ReturnType<typeof findClientForGrant>;
  /** Told when stamping last_used_at fails; the grant succeeds regardless. */
  onStampError?: (err: unknown) => void;
}

export interface GrantResult {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** last_used_at is written at most once a minute per secret. */
const STAMP_RESOLUTION_MS = 60_000;


/** How long after its expiry a presented secret is still recognised as the fleet's old one (see slowCheck). */
const EXPIRED_SECRET_GRACE_MS = 15 * 60_000;

/** Errors thrown once the throttle has counted the attempt: the route must not count them again. */
const counted = { counted: true } as const;
const invalidClient = () => new OAuthError('invalid_client', 'Client authentication failed', undefined, counted);

/** The client_credentials grant (RFC 6749 §4.4). */
export function createOAuthService(deps: OAuthDeps) {
  const { db, secrets, budget, tokens, secretCache, throttle, clock, serviceTokenTtlSec, defaultAudience } = deps;
  const readStored = coalesceReads((clientId: string) => findClientForGrant(db, clientId));
  const readClient = deps.readClient ?? readStored;
  // Slow (bcrypt) checks under way, by a keyed hash of (client_id, address, secret): never the plaintext.
  const flights = new Map<string, Promise<VerifiedSecret | undefined>>();
  const flightMacKey = randomBytes(32);
  const flightKey = (clientId: string, address: string, secret: string) =>
    createHmac('sha256', flightMacKey).update(clientId).update('\0').update(address).update('\0').update(secret).digest('base64');
  // When this instance last stamped each secret, set when the stamp starts (so one is in flight at a
  // time) and taken back if it fails. Bounded: cleared when full, which costs one extra stamp.
  const stampedAt = new Map<string, number>();

  /**
   * The secret a presented one is compared with: the live one its hint names, else a live one
   * from before hints ('' hint), else an expired one its hint names (never accepted, but a
   * service still holding it is not guessing: see slowCheck).
   */
  function candidateFor(row: GrantClientRow, hint: string): { secret: GrantSecret; live: boolean } | undefined {
    const now = clock();
    const live = row.secrets.filter((s) => isLiveSecret(s, now));
    const found = live.find((s) => s.hint === hint) ?? live.find((s) => s.hint === '');
    if (found) return { secret: found, live: true };
    const expired = row.secrets.find((s) => s.hint === hint && !isLiveSecret(s, now));
    return expired ? { secret: expired, live: false } : undefined;
  }

  /** The remembered (or just verified) secret, if the credential still holds it live with the same hash. */
  function stillLive(row: GrantClientRow, verified: VerifiedSecret): GrantSecret | undefined {
    const now = clock();
    return row.secrets.find((s) => s.id === verified.secretId && s.hash === verified.hash && isLiveSecret(s, now));
  }

  /**
   * The credential and the secret that matched, if the secret is one of its
   * live secrets and the credential is active; else the same `invalid_client`
   * after the same work: one bcrypt compare, for unknown ids (a dummy hash),
   * wrong, expired and deleted secrets, and revoked or disabled credentials
   * (their own secret is still compared). A credential with two live secrets
   * compares one: the secret's hint (a 24-bit one-way tag, lib/client-secret-hash.ts)
   * names it.
   *
   * A secret this server already verified for this client_id passes at once,
   * before the throttle: no bcrypt, and a service renewing from behind the
   * same address as an attacker keeps working. Every other attempt is counted
   * by the throttle before any database read or bcrypt work, so an address
   * over its limit costs one in-memory check. Identical attempts in flight
   * (same client_id, address and secret) share that work and that count, for
   * a known, an unknown or a revoked id alike: a fleet starting together pays
   * once, and timing reveals nothing. The credential's state comes from
   * `readClient`: current within the invalidation bound (the credential-state
   * cache), or by default a read that began after this request arrived; a
   * secret's expiry is compared with the clock at use, so a cached row never
   * stretches it.
   */
  async function authenticate({ clientId, clientSecret }: ClientCredentials, ip: string): Promise<{ client: GrantClientRow; secret: GrantSecret }> {
    // Only a well-formed id that passed slowCheck is ever remembered: a malformed one misses here.
    const remembered = secretCache.verified(clientId, clientSecret);
    if (remembered !== undefined) {
      const row = await readClient(clientId);
      const secret = row?.usable ? stillLive(row, remembered) : undefined;
      if (row && secret) return { client: row, secret };
      secretCache.forget(clientId, remembered.secretId);
    }
    // Ids that cannot exist (wrong characters, control bytes) never reach the database.
    const wellFormed = clientIdSchema.safeParse(clientId).data === clientId;

    const key = flightKey(clientId, addressKey(ip), clientSecret);
    let flight = flights.get(key);
    if (!flight) {
      flight = slowCheck(clientId, clientSecret, ip, wellFormed).finally(() => flights.delete(key));
      flights.set(key, flight);
    }
    const verified = await flight;
    if (verified === undefined) throw invalidClient();
    const row = await readClient(clientId);
    const secret = row?.usable ? stillLive(row, verified) : undefined;
    if (!row || !secret) throw invalidClient();
    secretCache.add(clientId, clientSecret, verified);
    return { client: row, secret };
  }

  /** Throttle, then (within the bcrypt budget) read and compare. The stored secret it matched, or undefined. */
  async function slowCheck(clientId: string, clientSecret: string, ip: string, wellFormed: boolean): Promise<VerifiedSecret | undefined> {
    // Counted as a failure from the start, taken back on success: parallel guesses cannot outrun the limit.
    const attempt = await throttle.begin(clientId, ip);
    if (attempt.retryAfterSec !== undefined) {
      throw new OAuthError('slow_down', 'Too many failed authentication attempts; retry later', 429, { retryAfterSec: attempt.retryAfterSec, ...counted });
    }
    // The read happens inside the budget too: a flood's reads are bounded by its concurrency, and
    // cannot queue ahead of cached grants on the database. It always goes to the database, even for
    // a client_id whose state `readClient` remembers: unknown ids are never remembered, so a wrong
    // secret for a known id would otherwise answer one database read sooner, and the time would
    // tell which client_ids exist (attacker review 6).
    let checked: { candidate: GrantSecret | undefined; ok: boolean; expiredMatch: boolean };
    try {
      checked = await budget.run(networkKey(ip), async () => {
        const row = wellFormed ? await readStored(clientId) : undefined;
        const found = row ? candidateFor(row, secretHint(clientSecret)) : undefined;
        const candidate = found?.secret;
        const matches = candidate ? await secrets.verify(clientSecret, { secret_hash: candidate.hash, hash_alg: candidate.alg }) : false;
        const ok = matches && found!.live && row!.usable;
        // Every failure costs one bcrypt compare, whatever was compared: none (unknown id, no live
        // secret) or an HMAC (microseconds) would otherwise tell failures apart by their time.
        if (!ok && candidate?.alg !== 'bcrypt') await secrets.burn(clientSecret);
        return { candidate, ok, expiredMatch: matches && !found!.live && row!.usable };
      });
    } catch (err) {
      if (!(err instanceof BudgetExceededError)) throw err;
      // Never checked: not a failure of this client_id (its key is dropped), but it counts against the address.
      await attempt.abandoned();
      throw new OAuthError('temporarily_unavailable', 'The authorization server is busy; retry later', 503, { retryAfterSec: err.retryAfterSec, cause: err, ...counted, outcome: 'shed' });
    }
    const { candidate, ok, expiredMatch } = checked;
    // A fleet still on a secret that expired within EXPIRED_SECRET_GRACE_MS is refused like any
    // failure, but it is not guessing: its (client_id, address) count is taken back, so it cannot
    // trip that limit for its own retry with the new secret (ServiceTokenManager re-reads its secret
    // after invalid_client). The address count stays: a leaked old secret buys no unthrottled
    // bcrypt work, and after the grace it is counted like any wrong secret.
    if (expiredMatch && candidate?.expires_at != null && clock() - candidate.expires_at <= EXPIRED_SECRET_GRACE_MS) await attempt.abandoned();
    if (!ok || !candidate) return undefined;
    await attempt.succeeded();
    return { secretId: candidate.id, hash: candidate.hash };
  }

  function grantedScopes(requested: string | undefined, held: string[]): string[] {
    if (requested === undefined || requested.trim() === '') return held;
    const wanted = [...new Set(requested.split(' ').filter(Boolean))];
    if (!wanted.every((s) => SCOPE_TOKEN.test(s))) throw new OAuthError('invalid_scope', 'scope is malformed: space-delimited scope tokens expected');
    const refused = wanted.filter((s) => !held.includes(s));
    if (refused.length > 0) throw new OAuthError('invalid_scope', `The client may not request: ${refused.join(' ')}`);
    return wanted;
  }

  function audienceFor(requested: string | undefined, allowed: string[]): string {
    if (requested === undefined || requested === defaultAudience) return defaultAudience;
    if (allowed.includes(requested)) return requested;
    throw new OAuthError('invalid_target', 'The client may not request tokens for that audience');
  }

  /**
   * last_used_at (the secret's and the credential's) is kept to a minute's resolution, so a busy
   * client does not write on every grant. A secret from before hints gets its hint here.
   */
  function stampLastUsed(client: GrantClientRow, secret: GrantSecret, plain: string) {
    // The row may come from memory (credential state): what this instance stamped since counts too.
    const stamped = stampedAt.get(secret.id);
    const at = clock();
    const due = Math.max(secret.last_used_at ?? Number.NEGATIVE_INFINITY, stamped ?? Number.NEGATIVE_INFINITY) <= at - STAMP_RESOLUTION_MS;
    if (!due && !(secret.hint === '' && stamped === undefined)) return;
    if (stampedAt.size >= 10_000) stampedAt.clear();
    stampedAt.set(secret.id, at);
    touchSecretUsed(db, { client: client.id, secret: secret.id }, new Date(at), secretHint(plain)).catch((err) => {
      // Not stamped: the next grant tries again.
      if (stampedAt.get(secret.id) === at) stampedAt.delete(secret.id);
      deps.onStampError?.(err);
    });
  }

  return {
    /**
     * Client authentication exactly as the grant does it (same throttle, same uniform
     * `invalid_client`), for the other endpoints a client calls with its secret
     * (RFC 7009 revocation, RFC 7662 introspection). The credential's row.
     */
    authenticateClient: async (credentials: ClientCredentials, ip: string) => (await authenticate(credentials, ip)).client,

    async clientCredentialsGrant(
      credentials: ClientCredentials,
      params: { scope?: string | undefined; audience?: string | undefined },
      ip: string,
    ): Promise<GrantResult> {
      const { client, secret } = await authenticate(credentials, ip);
      const scopes = grantedScopes(params.scope, client.scopes);
      const aud = audienceFor(params.audience, client.allowed_audiences);
      const { token, claims } = await tokens.serviceToken({ sub: client.client_id, client_id: client.client_id, service_name: client.name, scopes, aud }, serviceTokenTtlSec);
      stampLastUsed(client, secret, credentials.clientSecret);
      return { access_token: token, token_type: 'Bearer', expires_in: serviceTokenTtlSec, scope: claims.scope };
    },
  };
}

export type OAuthService = ReturnType<typeof createOAuthService>;
