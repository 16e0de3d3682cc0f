// The receiving side: a Fastify service ("catalog-api") that verifies service
// tokens locally, with the auth server's JWT secret and issuer, no network hop.
// Run it from the repository root with `pnpm example:receiving` (README.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createServiceTokenVerifier } from '@rw3iss/auth-server-ts';
import { requireServiceToken, serviceTokenPlugin } from '@rw3iss/auth-server-ts/fastify';

/** The audience this service accepts: callers must ask the token endpoint for it (`audience=catalog-api`). */
const AUDIENCE = 'catalog-api';

/**
 * The secret the auth server signs with: JWT_ACCESS_SECRET, or, for the
 * development server, the file it keeps in its data folder. The file ends
 * with a newline, which is not part of the secret.
 */
function jwtSecret(): string {
  if (process.env.JWT_ACCESS_SECRET) return process.env.JWT_ACCESS_SECRET;
  const file = join(process.env.DATA_DIR || '.data', 'jwt-access-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`no JWT_ACCESS_SECRET, and the development server's ${file} cannot be read: start the server first (pnpm start), or set JWT_ACCESS_SECRET`, { cause: err });
  }
}

// The development server's issuer is its own origin (JWT_ISSUER's default).
const issuer = process.env.JWT_ISSUER || process.env.AUTH_URL || 'http://127.0.0.1:3000';
const port = Number(process.env.CATALOG_PORT || 3001);

const verifier = createServiceTokenVerifier({
  secret: jwtSecret(),
  previousSecrets: process.env.JWT_ACCESS_SECRET_PREVIOUS ? [process.env.JWT_ACCESS_SECRET_PREVIOUS] : [],
  issuer,
  audience: AUDIENCE,
});

const app = Fastify({ logger: true });
await app.register(serviceTokenPlugin, { verifier });

app.post<{ Body: { sku?: string } }>('/publish', { onRequest: requireServiceToken('gsku:publish') }, async (request) => {
  const service = request.servicePrincipal!;
  return { published: request.body?.sku ?? null, by: service.clientId };
});

app.get('/healthz', async () => ({ status: 'ok' }));

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void app.close());
await app.listen({ port, host: '127.0.0.1' });
app.log.info({ issuer, audience: AUDIENCE }, 'catalog-api accepts service tokens with gsku:publish');
