import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { UserGuards } from '../../plugins/admin-guard.js';
import type { SigningKeyService } from './signing-keys.service.js';

const keyViewSchema = z.object({
  kid: z.string().describe('RFC 7638 JWK thumbprint'),
  alg: z.enum(['ES256', 'EdDSA']),
  state: z.enum(['next', 'current', 'retiring', 'retired']),
  created_at: z.string(),
  activates_at: z.string().describe('next: signs from this time'),
  activated_at: z.string().nullable(),
  retire_at: z.string().nullable().describe('retiring: published until this time'),
  retired_at: z.string().nullable(),
});
const rotateResponseSchema = z.object({ created: z.boolean(), key: keyViewSchema });

const jwkSchema = z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string(), use: z.string() });

/** `GET /.well-known/jwks.json` (RFC 7517), at the server root: the public keys of service tokens. */
export const jwksRoutes: FastifyPluginAsyncZod<{ keys: SigningKeyService; maxAgeSec: number }> = async (app, { keys, maxAgeSec }) => {
  const cacheControl = `public, max-age=${maxAgeSec}`;
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['oauth'],
        summary: 'Public keys of asymmetric service tokens (RFC 7517)',
        description:
          'The public keys receiving services verify ES256 / EdDSA service tokens with, selected by `kid` (the RFC 7638 thumbprint). Empty with SERVICE_TOKEN_ALG=HS256 until keys are prepared. A next key is published before it signs; a retired key stays until every token it signed has expired.',
        response: { 200: z.object({ keys: z.array(jwkSchema) }).describe('The JWK set (cacheable for JWKS_MAX_AGE seconds)') },
      },
    },
    async (_request, reply) => reply.header('cache-control', cacheControl).type('application/jwk-set+json').send(keys.jwks()),
  );
};

/** `/admin/keys`: the signing keys and their rotation, system_admin only. */
export const signingKeysRoutes: FastifyPluginAsyncZod<{ keys: SigningKeyService; guards: UserGuards }> = async (app, { keys, guards }) => {
  app.addHook('onRequest', guards.requireSystemAdmin);
  const common = { tags: ['signing-keys'], security: [{ bearerAuth: [] }] };

  app.get(
    '/admin/keys',
    {
      schema: {
        ...common,
        summary: 'Every signing key and its state (never a private key)',
        description: 'The ES256 / EdDSA signing keys: next (published, not signing yet), current (signing), retiring (published until its tokens expire) and retired.',
        response: { 200: z.object({ keys: z.array(keyViewSchema) }).describe('The keys, newest first') },
      },
    },
    async () => ({ keys: await keys.list() }),
  );

  app.post(
    '/admin/keys/rotate',
    {
      schema: {
        ...common,
        summary: 'Schedule a signing-key rotation',
        description:
          'Creates a next key, published now and signing after SIGNING_KEY_PUBLISH_DELAY, so verifiers that cache the JWKS know it before it signs. Idempotent while a rotation is scheduled: answers 200 with the scheduled key.',
        response: {
          200: rotateResponseSchema.describe('A rotation was already scheduled: its key'),
          201: rotateResponseSchema.describe('A new key was scheduled'),
        },
      },
    },
    async (request, reply) => {
      const result = await keys.rotate({ id: request.user!.id, label: request.user!.email, ip: request.ip });
      // Visible to the other routes of this instance now, not at its next refresh.
      await keys.refresh();
      return reply.status(result.created ? 201 : 200).send(result);
    },
  );
};
