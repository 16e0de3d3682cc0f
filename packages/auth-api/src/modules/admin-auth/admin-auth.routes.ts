import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorResponses } from '../../lib/openapi.js';
import type { UserGuards } from '../../plugins/admin-guard.js';
import { loginBodySchema, loginResponseSchema, meResponseSchema } from './admin-auth.schemas.js';
import { type AdminAuthService, toPublicUser } from './admin-auth.service.js';

export interface AdminAuthRoutesOptions {
  auth: AdminAuthService;
  guards: UserGuards;
}

export const adminAuthRoutes: FastifyPluginAsyncZod<AdminAuthRoutesOptions> = async (app, { auth, guards }) => {
  app.post(
    '/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign in with email and password; returns a user token',
        description: 'A user token (`token_type: "user"`) for the management routes, valid `USER_TOKEN_TTL` seconds. A wrong email and a wrong password get the same answer.',
        body: loginBodySchema,
        response: { 200: loginResponseSchema.describe('Signed in: the user, a user token and its roles'), ...errorResponses(['unauthorized', 'Wrong email or password (one answer for both)']) },
      },
    },
    async (request, reply) => {
      const result = await auth.login(request.body.email, request.body.password, request.ip);
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result);
    },
  );

  app.get(
    '/auth/me',
    {
      onRequest: guards.requireUser,
      schema: { tags: ['auth'], summary: 'The signed-in user', description: 'The user and roles of the bearer token, read from the database.', security: [{ bearerAuth: [] }], response: { 200: meResponseSchema.describe('The user and roles') } },
    },
    async (request) => {
      const user = request.user!;
      return { user: toPublicUser(user), roles: user.roles };
    },
  );
};
