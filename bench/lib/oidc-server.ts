/**
 * Baseline: node-oidc-provider's client_credentials grant with JWT (HS256)
 * access tokens, on the same machine. Usage: tsx oidc-server.ts PORT SECRET
 */
import { createSecretKey } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const clientSecret = process.argv[3]!;
const signingKey = createSecretKey(Buffer.from('bench-oidc-provider-hs256-key-0123456789abcdef'));
const resource = 'urn:bench:api';

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'bench-svc',
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'bench:read',
    },
  ],
  scopes: ['bench:read'],
  ttl: { ClientCredentials: 900 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'bench:read',
        audience: resource,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'HS256', key: signingKey } },
      }),
    },
  },
});
const server = provider.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
