import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isSessionTokenShape } from '../../lib/secrets.js';
import { bearerToken, unauthorized, type UserGuards } from '../../plugins/admin-guard.js';
import { changePasswordBodySchema, loginBodySchema, loginResponseSchema, meResponseSchema, revokeAllResponseSchema } from './admin-auth.schemas.js';
import { type AdminAuthService, toPublicUser } from './admin-auth.service.js';

export interface AdminAuthRoutesOptions {
  auth: AdminAuthService;
  guards: UserGuards;
}

export const adminAuthRoutes: FastifyPluginAsyncZod<AdminAuthRoutesOptions> = async (app, { auth, guards }) => {
  const security = [{ bearerAuth: [] }];

  app.post(
    '/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign in with email and password; returns an admin session token',
        body: loginBodySchema,
        response: { 200: loginResponseSchema },
      },
    },
    async (request, reply) => {
      const result = await auth.login(request.body.email, request.body.password, { ip: request.ip, userAgent: request.headers['user-agent'] });
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result);
    },
  );

  app.get(
    '/auth/me',
    {
      onRequest: guards.requireUser,
      schema: { tags: ['auth'], summary: 'The signed-in user', security, response: { 200: meResponseSchema } },
    },
    async (request) => {
      const user = request.user!;
      return { user: toPublicUser(user), roles: user.roles };
    },
  );

  // No session guard: ending a session that already ended (or expired) is not an error, so a retry is safe.
  app.post(
    '/auth/logout',
    { schema: { tags: ['auth'], summary: 'End the current session (idempotent)', security, response: { 204: z.null().describe('Signed out') } } },
    async (request, reply) => {
      const token = bearerToken(request.headers.authorization);
      if (!token) throw unauthorized(reply, 'A bearer token is required', false);
      // A JWT or any other non-session token is no credential here either.
      if (!isSessionTokenShape(token)) throw unauthorized(reply, 'The token is invalid or expired', true);
      await auth.logout(token, request.ip);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/auth/sessions/revoke-all',
    {
      onRequest: guards.requireUser,
      schema: { tags: ['auth'], summary: "End every session of the caller, this one included", security, response: { 200: revokeAllResponseSchema } },
    },
    async (request) => ({ revoked_count: await auth.revokeAllSessions(request.user!, request.ip) }),
  );

  app.post(
    '/auth/password',
    {
      onRequest: guards.requireUser,
      schema: {
        tags: ['auth'],
        summary: "Change the caller's password; ends the caller's other sessions",
        security,
        body: changePasswordBodySchema,
        response: { 204: z.null().describe('Changed') },
      },
    },
    async (request, reply) => {
      await auth.changePassword(request.user!, request.sessionId!, request.body.current_password, request.body.new_password, request.ip);
      return reply.status(204).send(null);
    },
  );
};
