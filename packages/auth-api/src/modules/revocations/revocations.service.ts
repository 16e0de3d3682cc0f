import type { ServiceTokenClaims } from '@rw3iss/auth-server-ts';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import type { Clock } from '../../lib/clock.js';
import type { ServiceTokenVerifier } from '../../lib/tokens.js';
import { findClientForGrant } from '../m2m-clients/m2m-clients.repository.js';
import { SERVER_SCOPES } from '../permissions/permissions.schemas.js';
import { insertTokenRevocation, isTokenRevoked, feedEnd, listFeed } from './revocations.repository.js';
import { FEED_MAX_PAGE, type FeedResponse, type IntrospectionResponse } from './revocations.schemas.js';

export interface RevocationsDeps {
  db: Kysely<Database>;
  clock: Clock;
  /** The server's verification of its own service tokens, for this server's audience (feed readers). */
  verifyServiceToken: ServiceTokenVerifier;
  /** The same, for any audience: revocation and introspection answer about every token the server issued. */
  verifyAnyAudience: ServiceTokenVerifier;
}

const CURSOR_VERSION = 1;
const encodeCursor = (seq: string) => Buffer.from(JSON.stringify({ v: CURSOR_VERSION, s: seq })).toString('base64url');

function decodeCursor(cursor: string): string {
  try {
    const { v, s } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; s?: unknown };
    if (v === CURSOR_VERSION && typeof s === 'string' && /^(0|[1-9][0-9]{0,17})$/.test(s)) return s;
  } catch {
    // not JSON: refused below
  }
  throw new ApiError('validation_failed', 'The request is invalid', [{ path: 'querystring.since', message: 'is not a cursor this server issued' }]);
}

const INACTIVE: IntrospectionResponse = Object.freeze({ active: false });

/** Whole seconds: the credential's tokens with a lower iat are refused; null: all of them. */
const notBefore = (at: Date | null) => (at === null ? null : Math.floor(at.getTime() / 1000));

/**
 * The revocation feed, RFC 7009 token revocation and RFC 7662 introspection
 * (docs/API.md, "Revocation"). A token is revoked when its jti is listed or
 * when its credential's entry refuses it (all tokens while revoked or disabled);
 * a revoked or disabled credential's tokens are also inactive at introspection.
 */
export function createRevocationsService({ db, clock, verifyServiceToken, verifyAnyAudience }: RevocationsDeps) {
  /** A live token of this server, by any audience: claims when valid, not revoked, and its credential usable; else undefined. */
  async function liveToken(token: string, verify: ServiceTokenVerifier): Promise<ServiceTokenClaims | undefined> {
    const claims = await verify(token);
    return claims && (await usableCredentialOf(claims)) ? claims : undefined;
  }

  /** The verified token's credential, when it is usable and the token is not revoked; else undefined. */
  async function usableCredentialOf(claims: ServiceTokenClaims) {
    const [credential, revoked] = await Promise.all([
      findClientForGrant(db, claims.client_id),
      isTokenRevoked(db, { clientId: claims.client_id, jti: typeof claims.jti === 'string' ? claims.jti : undefined, iat: claims.iat }),
    ]);
    return credential?.usable && !revoked ? credential : undefined;
  }

  return {
    /**
     * Who may read the feed: a live service token for this server's audience carrying
     * `auth:revocations:read`, whose credential still holds that scope.
     */
    async authorizeFeedReader(token: string | undefined): Promise<'ok' | 'missing' | 'invalid' | 'forbidden'> {
      if (token === undefined) return 'missing';
      const claims = await verifyServiceToken(token);
      if (!claims) return 'invalid';
      if (!claims.scopes.includes(SERVER_SCOPES.revocationsRead)) return 'forbidden';
      const credential = await usableCredentialOf(claims);
      if (!credential) return 'invalid';
      return credential.scopes.includes(SERVER_SCOPES.revocationsRead) ? 'ok' : 'forbidden';
    },

    /** One page of the feed: live entries after `since` (all of them without), in the order they were added. */
    async feed(query: { since?: string | undefined; limit?: number | undefined }): Promise<FeedResponse> {
      const since = query.since === undefined ? '0' : decodeCursor(query.since);
      const limit = query.limit ?? FEED_MAX_PAGE;
      // Read before the page: an entry committed while the page is read has a higher seq than `stored`,
      // so an empty snapshot's cursor cannot pass it.
      const end = await feedEnd(db);
      // A cursor past anything this database ever numbered was issued before it was restored from a
      // backup: the entries numbered below it since would never be sent. Such a reader gets a snapshot.
      const after = BigInt(since) > BigInt(end.issued) ? '0' : since;
      const rows = await listFeed(db, after, limit + 1, new Date(clock()));
      const hasMore = rows.length > limit;
      const page = hasMore ? rows.slice(0, limit) : rows;
      // An empty page keeps the caller's cursor; a snapshot of nothing starts after the newest entry stored.
      const cursor = page.at(-1)?.seq ?? (after === '0' ? end.stored : after);
      const response: FeedResponse = { cursor: encodeCursor(cursor), has_more: hasMore, clients: [], tokens: [] };
      for (const row of page) {
        if (row.kind === 'client') response.clients.push({ client_id: row.client_id, revoked_at: row.revoked_at.toISOString(), not_before: notBefore(row.not_before) });
        else response.tokens.push({ jti: row.jti!, client_id: row.client_id, exp: Math.floor(row.expires_at!.getTime() / 1000) });
      }
      return response;
    },

    /**
     * RFC 7009 §2.1: revokes `token` if it is a live service token of `clientId` (the
     * authenticated client); any other token (unknown, malformed, expired, another client's)
     * changes nothing, and the caller cannot tell which.
     */
    async revokeToken(clientId: string, token: string): Promise<void> {
      const claims = await verifyAnyAudience(token);
      if (!claims || claims.client_id !== clientId || typeof claims.jti !== 'string' || claims.jti === '') return;
      await insertTokenRevocation(db, { clientId, jti: claims.jti, expiresAt: new Date(claims.exp * 1000) }, clock);
    },

    /** RFC 7662 §2.2: the claims of a live service token of this server, or `{active: false}`. */
    async introspect(token: string): Promise<IntrospectionResponse> {
      const claims = await liveToken(token, verifyAnyAudience);
      if (!claims) return INACTIVE;
      return {
        active: true,
        scope: claims.scope ?? claims.scopes.join(' '),
        client_id: claims.client_id,
        token_type: 'Bearer',
        exp: claims.exp,
        iat: claims.iat,
        ...(typeof claims.nbf === 'number' ? { nbf: claims.nbf } : {}),
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        ...(typeof claims.jti === 'string' ? { jti: claims.jti } : {}),
      };
    },
  };
}

export type RevocationsService = ReturnType<typeof createRevocationsService>;
