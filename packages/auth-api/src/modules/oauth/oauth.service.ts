import { createHmac, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { OAuthError } from '../../errors.js';
import type { Clock } from '../../lib/clock.js';
import { coalesceReads } from '../../lib/coalesce.js';
import type { PasswordHasher } from '../../lib/password.js';
import type { VerifiedSecretCache } from '../../lib/secret-cache.js';
import { addressKey, networkKey, type FailureThrottle } from '../../lib/throttle.js';
import { BudgetExceededError, type WorkBudget } from '../../lib/work-budget.js';
import type { TokenIssuer } from '../../lib/tokens.js';
import { clientIdSchema } from '../m2m-clients/m2m-clients.schemas.js';
import { findClientForGrant, touchLastUsed } from '../m2m-clients/m2m-clients.repository.js';
import type { ClientCredentials } from './client-auth.js';

/** RFC 6749 §3.3 scope-token characters. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export interface OAuthDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  /** Bounds bcrypt work across the server; a shed check answers 503. */
  budget: WorkBudget;
  tokens: TokenIssuer;
  secretCache: VerifiedSecretCache;
  /** Failed client authentication, per address and per (client_id, address). */
  throttle: FailureThrottle;
  clock: Clock;
  serviceTokenTtlSec: number;
  defaultAudience: string;
  /** Told when stamping last_used_at fails; the grant succeeds regardless. */
  onStampError?: (err: unknown) => void;
}

export interface GrantResult {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** Errors thrown once the throttle has counted the attempt: the route must not count them again. */
const counted = { counted: true } as const;
const invalidClient = () => new OAuthError('invalid_client', 'Client authentication failed', undefined, counted);

/** The client_credentials grant (RFC 6749 §4.4). */
export function createOAuthService(deps: OAuthDeps) {
  const { db, hasher, budget, tokens, secretCache, throttle, clock, serviceTokenTtlSec, defaultAudience } = deps;
  const readClient = coalesceReads((clientId) => findClientForGrant(db, clientId));
  // Slow (bcrypt) checks under way, by a keyed hash of (client_id, address, secret): never the plaintext.
  const flights = new Map<string, Promise<string | undefined>>();
  const flightMacKey = randomBytes(32);
  const flightKey = (clientId: string, address: string, secret: string) =>
    createHmac('sha256', flightMacKey).update(clientId).update('\0').update(address).update('\0').update(secret).digest('base64');
  const stamping = new Set<string>();

  /**
   * The credential if the secret is right and it is active, else the same
   * `invalid_client` after the same work: unknown ids compare against a dummy
   * hash; revoked and disabled credentials still compare their own.
   *
   * A secret this server already verified for this client_id passes at once,
   * before the throttle: no bcrypt, and a service renewing from behind the
   * same address as an attacker keeps working. Every other attempt is counted
   * by the throttle before any database read or bcrypt work, so an address
   * over its limit costs one in-memory check. Identical attempts in flight
   * (same client_id, address and secret) share that work and that count, for
   * a known, an unknown or a revoked id alike: a fleet starting together pays
   * once, and timing reveals nothing. The credential's state always comes
   * from a read that began after this request arrived.
   */
  async function authenticate({ clientId, clientSecret }: ClientCredentials, ip: string) {
    // Ids that cannot exist (wrong characters, control bytes) never reach the database.
    const wellFormed = clientIdSchema.safeParse(clientId).data === clientId;
    const remembered = wellFormed ? secretCache.verifiedHash(clientId, clientSecret) : undefined;
    if (remembered !== undefined) {
      const row = await readClient(clientId);
      if (row?.usable && row.client_secret_hash === remembered) return row;
      secretCache.delete(clientId);
    }

    const key = flightKey(clientId, addressKey(ip), clientSecret);
    let flight = flights.get(key);
    if (!flight) {
      flight = slowCheck(clientId, clientSecret, ip, wellFormed).finally(() => flights.delete(key));
      flights.set(key, flight);
    }
    const verifiedHash = await flight;
    if (verifiedHash === undefined) throw invalidClient();
    const row = await readClient(clientId);
    if (!row?.usable || row.client_secret_hash !== verifiedHash) throw invalidClient();
    secretCache.add(clientId, clientSecret, verifiedHash);
    return row;
  }

  /** Throttle, then (within the bcrypt budget) read and compare. The hash the secret matched, or undefined. */
  async function slowCheck(clientId: string, clientSecret: string, ip: string, wellFormed: boolean): Promise<string | undefined> {
    // Counted as a failure from the start, taken back on success: parallel guesses cannot outrun the limit.
    const attempt = await throttle.begin(clientId, ip);
    if (attempt.retryAfterSec !== undefined) {
      throw new OAuthError('slow_down', 'Too many failed authentication attempts; retry later', 429, { retryAfterSec: attempt.retryAfterSec, ...counted });
    }
    // The read happens inside the budget too: a flood's reads are bounded by its concurrency, and
    // cannot queue ahead of cached grants on the database.
    let checked: { row: Awaited<ReturnType<typeof readClient>>; matches: boolean };
    try {
      checked = await budget.run(networkKey(ip), async () => {
        const row = wellFormed ? await readClient(clientId) : undefined;
        const matches = row ? await hasher.verify(clientSecret, row.client_secret_hash) : (await hasher.burn(clientSecret), false);
        return { row, matches };
      });
    } catch (err) {
      if (!(err instanceof BudgetExceededError)) throw err;
      // Never checked: not a failure of this client_id (its key is dropped), but it counts against the address.
      await attempt.abandoned();
      throw new OAuthError('temporarily_unavailable', 'The authorization server is busy; retry later', 503, { retryAfterSec: err.retryAfterSec, cause: err, ...counted, outcome: 'shed' });
    }
    const { row, matches } = checked;
    if (!row || !matches) return undefined;
    if (row.usable) await attempt.succeeded();
    return row.client_secret_hash;
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

  /** last_used_at is kept to a minute's resolution (see findClientForGrant), so a busy client does not write on every grant. */
  function stampLastUsed(id: string, due: boolean) {
    if (!due || stamping.has(id)) return;
    stamping.add(id);
    touchLastUsed(db, id, new Date(clock()))
      .catch((err) => deps.onStampError?.(err))
      .finally(() => stamping.delete(id));
  }

  return {
    /**
     * Client authentication exactly as the grant does it (same throttle, same uniform
     * `invalid_client`), for the other endpoints a client calls with its secret
     * (RFC 7009 revocation, RFC 7662 introspection). The credential's row.
     */
    authenticateClient: (credentials: ClientCredentials, ip: string) => authenticate(credentials, ip),

    async clientCredentialsGrant(
      credentials: ClientCredentials,
      params: { scope?: string | undefined; audience?: string | undefined },
      ip: string,
    ): Promise<GrantResult> {
      const client = await authenticate(credentials, ip);
      const scopes = grantedScopes(params.scope, client.scopes);
      const aud = audienceFor(params.audience, client.allowed_audiences);
      const { token, claims } = await tokens.serviceToken({ sub: client.client_id, client_id: client.client_id, service_name: client.name, scopes, aud }, serviceTokenTtlSec);
      stampLastUsed(client.id, client.stamp_due);
      return { access_token: token, token_type: 'Bearer', expires_in: serviceTokenTtlSec, scope: claims.scope };
    },
  };
}

export type OAuthService = ReturnType<typeof createOAuthService>;
