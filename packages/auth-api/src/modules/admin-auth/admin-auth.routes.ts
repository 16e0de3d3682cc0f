import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
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
        body: loginBodySchema,
        response: { 200: loginResponseSchema },
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
      schema: { tags: ['auth'], summary: 'The signed-in user', security: [{ bearerAuth: [] }], response: { 200: meResponseSchema } },
    },
    async (request) => {
      const user = request.user!;
      return { user: toPublicUser(user), roles: user.roles };
    },
  );
};
