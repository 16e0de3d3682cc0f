// The calling side: a short-lived job (think cron) that trades its credential for
// a service token and calls the receiving service with it, then exits.
// Run it from the repository root with `CLIENT_SECRET=… pnpm example:calling` (README.md).
import { ServiceTokenManager, TokenRequestError } from '@rw3iss/auth-server-ts';

const clientSecret = process.env.CLIENT_SECRET;
if (!clientSecret) {
  process.stderr.write('CLIENT_SECRET is required: the client_secret printed when the credential was created\n');
  process.exit(2);
}

const tokens = new ServiceTokenManager({
  serverUrl: process.env.AUTH_URL || 'http://127.0.0.1:3000', // the token endpoint is read from its RFC 8414 metadata
  clientId: process.env.CLIENT_ID || 'billing-svc',
  clientSecret,
  scopes: ['gsku:publish'],
  audience: 'catalog-api', // the audience the receiving service requires
});

const catalog = process.env.CATALOG_URL || 'http://127.0.0.1:3001';
try {
  const res = await tokens.fetch(`${catalog}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sku: 'SKU-1' }),
  });
  console.log(`POST ${catalog}/publish → ${res.status} ${await res.text()}`);
  if (!res.ok) process.exitCode = 1;
} catch (err) {
  if (!(err instanceof TokenRequestError)) throw err;
  // e.g. oauth_error invalid_client (wrong, disabled or revoked credential), network_error (server down)
  console.error(`no service token: ${err.code}${err.error ? ` ${err.error}` : ''}: ${err.message}`);
  process.exitCode = 1;
} finally {
  await tokens.close();
}
