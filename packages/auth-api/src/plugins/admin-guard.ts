import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UserRow } from '../db/schema.js';
import { ApiError } from '../errors.js';
import type { AccessTokenClaims } from '../lib/tokens.js';
import { SYSTEM_ADMIN } from '../modules/admin-auth/admin-auth.schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in user, set by the user guards. */
    user?: UserRow;
  }
}

export interface GuardDeps {
  verifyAccessToken(token: string): Promise<AccessTokenClaims | undefined>;
  findUser(id: string): Promise<UserRow | undefined>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The bearer token of an `Authorization: Bearer …` header (RFC 6750 §2.1), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  return match?.[1];
}

function unauthorized(reply: FastifyReply, message: string, invalidToken: boolean): ApiError {
  reply.header('www-authenticate', invalidToken ? 'Bearer realm="auth-api", error="invalid_token"' : 'Bearer realm="auth-api"');
  return new ApiError('unauthorized', message);
}

/**
 * preHandlers for user-token routes. The user is read from the database on
 * every request, so a deleted user or a removed role takes effect at once
 * rather than when the token expires. Anything but a valid user token is
 * refused: service tokens get 403.
 */
export function createUserGuards({ verifyAccessToken, findUser }: GuardDeps) {
  async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw unauthorized(reply, 'A bearer token is required', false);
    const claims = await verifyAccessToken(token);
    if (!claims) throw unauthorized(reply, 'The token is invalid or expired', true);
    if (claims.token_type !== 'user') throw new ApiError('forbidden', 'Service tokens cannot use this route');
    // Anyone holding the shared key could mint a user token; a sub that is not a user id never reaches the database.
    const user = UUID.test(claims.sub) ? await findUser(claims.sub) : undefined;
    if (!user) throw unauthorized(reply, 'The token is invalid or expired', true);
    request.user = user;
  }

  async function requireSystemAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await requireUser(request, reply);
    if (!request.user?.roles.includes(SYSTEM_ADMIN)) throw new ApiError('forbidden', 'This route requires the system_admin role');
  }

  return { requireUser, requireSystemAdmin };
}

export type UserGuards = ReturnType<typeof createUserGuards>;
