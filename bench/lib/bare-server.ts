/**
 * Baseline: a bare Fastify route in the auth-api's server configuration
 * (same logger settings, form parser, body limit, request ids), answering a
 * token-shaped JSON body without doing any work. Usage: tsx bare-server.ts PORT [VARIANT]
 *
 * VARIANT (bench/mint-floor.ts) adds one piece of the grant's work and nothing else:
 * `fresh` builds a new answer string each time; `mint` mints an HS256 service token with
 * auth-api's own issuer (lib/tokens.ts); `mint-createhmac` mints the same token with
 * `createHmac`. Default: the fixed answer.
 */
import { createHmac, createSecretKey, randomUUID } from 'node:crypto';
import fastifyFormbody from '@fastify/formbody';
import Fastify, { LogController } from 'fastify';
import { serverLoggerOptions } from '@rw3iss/auth-api/dist/app.js';
import { createTokenIssuer } from '@rw3iss/auth-api/dist/lib/tokens.js';

const port = Number(process.argv[2]);
const variant = process.argv[3] ?? 'fixed';
const app = Fastify({
  logger: serverLoggerOptions('warn'),
  logController: new LogController({ disableRequestLogging: true }),
  bodyLimit: 64 * 1024,
  genReqId: () => randomUUID(),
  requestIdHeader: false,
});
await app.register(fastifyFormbody, { bodyLimit: 8 * 1024 });
const body = JSON.stringify({ access_token: 'x'.repeat(520), token_type: 'Bearer', expires_in: 900, scope: 'bench:read' });
const keys = { secret: 'bare-route-secret-of-at-least-32-characters', issuer: `http://127.0.0.1:${port}`, audience: 'auth-api' };
const issuer = createTokenIssuer(keys, Date.now);
const claimsInput = { sub: 'bench-svc', client_id: 'bench-svc', service_name: 'Bench', scopes: ['bench:read'] };
const hmacKey = createSecretKey(Buffer.from(keys.secret));
const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'bench' })).toString('base64url');
let n = 0;
/** The answer of this variant: the fixed body, or one built by the variant's work. */
async function answer(): Promise<string> {
  if (variant === 'fixed') return body;
  if (variant === 'fresh') return JSON.stringify({ access_token: `${'x'.repeat(500)}${n++}`, token_type: 'Bearer', expires_in: 900, scope: 'bench:read' });
  let token: string;
  if (variant === 'mint') ({ token } = await issuer.serviceToken(claimsInput, 900));
  else if (variant === 'mint-createhmac') {
    const iat = Math.floor(Date.now() / 1000);
    const claims = { iss: keys.issuer, sub: 'bench-svc', aud: keys.audience, iat, nbf: iat, exp: iat + 900, jti: randomUUID(), token_type: 'service', client_id: 'bench-svc', service_name: 'Bench', scopes: ['bench:read'], scope: 'bench:read' };
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    token = `${input}.${createHmac('sha256', hmacKey).update(input).digest('base64url')}`;
  } else throw new Error(`unknown variant ${variant}`);
  return JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 900, scope: 'bench:read' });
}
app.post('/token', async (_request, reply) =>
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache').header('content-type', 'application/json; charset=utf-8').send(variant === 'fixed' ? body : await answer()),
);
app.get('/healthz', async () => ({ status: 'ok' }));
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
