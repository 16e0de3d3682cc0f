import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UserRow } from '../db/schema.js';
import { ApiError } from '../errors.js';
import { SYSTEM_ADMIN } from '../modules/admin-auth/admin-auth.schemas.js';
import type { LiveSession } from '../modules/admin-auth/sessions.repository.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in user, set by the user guards. */
    user?: UserRow;
    /** The id of the admin session the request came with, set by the user guards. */
    sessionId?: string;
  }
}

export interface GuardDeps {
  /** The live session of a bearer token, or undefined (see AdminAuthService.authenticate). */
  authenticate(token: string): Promise<LiveSession | undefined>;
  /** Whether a bearer token is a genuine service token of this server (it then gets 403, not 401). */
  verifyServiceToken?(token: string): Promise<unknown>;
}

/** The bearer token of an `Authorization: Bearer …` header (RFC 6750 §2.1), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  return match?.[1];
}

export function unauthorized(reply: FastifyReply, message: string, invalidToken: boolean): ApiError {
  reply.header('www-authenticate', invalidToken ? 'Bearer realm="auth-api", error="invalid_token"' : 'Bearer realm="auth-api"');
  return new ApiError('unauthorized', message);
}

/**
 * onRequest hooks for the admin routes. Only an admin session token passes:
 * admin identity is never a signed claim here, so any JWT forged with
 * JWT_ACCESS_SECRET, whatever its claims, is 401. A genuine service token
 * (one this server issued, verified in full) is 403: authenticated, but not
 * allowed (the contract's answer for service tokens). The
 * user is read with the session on every request, so a deleted or disabled
 * user or a removed role takes effect at once.
 */
export function createUserGuards({ authenticate, verifyServiceToken }: GuardDeps) {
  async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw unauthorized(reply, 'A bearer token is required', false);
    const session = await authenticate(token);
    if (!session) {
      if (verifyServiceToken && token.split('.').length === 3 && (await verifyServiceToken(token)) !== undefined) {
        throw new ApiError('forbidden', 'Service tokens cannot use this route');
      }
      throw unauthorized(reply, 'The token is invalid or expired', true);
    }
    request.user = session.user;
    request.sessionId = session.sessionId;
  }

  async function requireSystemAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await requireUser(request, reply);
    if (!request.user?.roles.includes(SYSTEM_ADMIN)) throw new ApiError('forbidden', 'This route requires the system_admin role');
  }

  return { requireUser, requireSystemAdmin };
}

export type UserGuards = ReturnType<typeof createUserGuards>;
