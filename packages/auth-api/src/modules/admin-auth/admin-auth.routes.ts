import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../../lib/openapi.js';
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
        description: 'An opaque admin session token (not a JWT: no signing key can mint one) for the management routes, valid `USER_TOKEN_TTL` seconds from sign-in. A wrong email, a wrong password and a disabled user get the same answer.',
        body: loginBodySchema,
        response: { 200: loginResponseSchema.describe('Signed in: the user, a session token and its roles'), ...errorResponses(['unauthorized', 'Wrong email or password (one answer for both)']) },
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
      schema: { tags: ['auth'], summary: 'The signed-in user', description: 'The user and roles of the session, read from the database.', security, response: { 200: meResponseSchema.describe('The user and roles') } },
    },
    async (request) => {
      const user = request.user!;
      return { user: toPublicUser(user), roles: user.roles };
    },
  );

  // No session guard: ending a session that already ended (or expired) is not an error, so a retry is safe.
  app.post(
    '/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'End the current session (idempotent)',
        description: 'Ends the session of the bearer token at once. A session that already ended or expired also answers 204, so a retry is safe.',
        security,
        response: { 204: z.null().describe('Signed out'), ...errorResponses(['unauthorized', 'No bearer token, or one that is not an admin session token']) },
      },
    },
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
      schema: {
        tags: ['auth'],
        summary: 'End every session of the caller, this one included',
        description: "Signs the caller out everywhere, e.g. after a token may have leaked. Answers how many sessions ended.",
        security,
        response: { 200: revokeAllResponseSchema.describe('The sessions ended') },
      },
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
        description: 'Needs the current password (a wrong one is 400 on `body.current_password` and counts as a failed sign-in). Every other session of the caller ends; this one stays.',
        security,
        body: changePasswordBodySchema,
        response: { 204: z.null().describe('Changed'), ...errorResponses('validation_failed') },
      },
    },
    async (request, reply) => {
      await auth.changePassword(request.user!, request.sessionId!, request.body.current_password, request.body.new_password, request.ip);
      return reply.status(204).send(null);
    },
  );
};
