// The SDK against a scripted fetch: what it sends, and how it reads answers no real server gives easily.
import { describe, expect, it } from 'vitest';
import { AuthClientError, createAuthClient, createMemoryStorage, type FetchLike, type TokenStorage } from '../src/index.js';
import { failure } from './helpers.js';

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A fetch that records each request and answers with the next scripted response. */
function scriptedFetch(...answers: Array<Response | Error | (() => Response)>) {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ url, method: init.method, headers: init.headers, body: init.body });
    const answer = answers.shift();
    if (!answer) throw new Error('no scripted answer left');
    if (answer instanceof Error) throw answer;
    return typeof answer === 'function' ? answer() : answer;
  };
  return { fetch, sent };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

const record = {
  id: '7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4',
  client_id: 'billing-svc',
  name: 'Billing backend',
  description: null,
  scopes: ['gsku:publish'],
  allowed_audiences: [],
  status: 'active',
  created_at: '2025-01-01T00:00:00.000Z',
  updated_at: '2025-01-01T00:00:00.000Z',
  last_used_at: null,
  revoked_at: null,
  created_by: null,
};
const loginAnswer = (token: string) =>
  json(200, { user: { id: 'u1', email: 'a@example.com', roles: ['system_admin'], created_at: record.created_at }, tokens: { access_token: token, token_type: 'Bearer', expires_in: 900 }, roles: ['system_admin'] });

const base = 'https://auth.example.com/api/v1';

describe('requests', () => {
  it('sends X-App-Code everywhere, the bearer token after login, JSON only with a body', async () => {
    const { fetch, sent } = scriptedFetch(loginAnswer('tok-1'), json(201, { client: record, client_secret: 's' }), json(200, { clients: [record] }), json(204, null));
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'auth-client-demo', fetch });
    await client.auth.login({ email: 'a@example.com', password: 'pw' });
    await client.services.create({ client_id: 'billing-svc', name: 'Billing backend' });
    await client.services.list();
    await client.services.revoke(record.id);

    expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual([
      `POST ${base}/auth/login`,
      `POST ${base}/admin/m2m-clients`,
      `GET ${base}/admin/m2m-clients`,
      `DELETE ${base}/admin/m2m-clients/${record.id}`,
    ]);
    for (const r of sent) expect(r.headers['x-app-code']).toBe('auth-client-demo');
    expect(sent[0]!.headers.authorization).toBeUndefined();
    expect(JSON.parse(sent[0]!.body!)).toEqual({ email: 'a@example.com', password: 'pw' });
    expect(sent.slice(1).map((r) => r.headers.authorization)).toEqual(['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
    expect(sent.map((r) => r.headers['content-type'])).toEqual(['application/json', 'application/json', undefined, undefined]);
    expect(sent[3]!.body).toBeUndefined();
  });

  it('sends only the list options given, as query parameters; listPage returns the cursor', async () => {
    const { fetch, sent } = scriptedFetch(
      json(200, { clients: [record], next_cursor: null }),
      json(200, { clients: [record], next_cursor: null }),
      json(200, { clients: [record], next_cursor: 'abc' }),
      json(200, record),
    );
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch });
    expect(await client.services.list()).toEqual([record]);
    await client.services.list({ status: 'disabled', scope: 'gsku:read', client_id_prefix: 'a&b', include_revoked: true });
    expect(await client.services.listPage({ limit: 10, cursor: 'c=1', include_revoked: false })).toEqual({ clients: [record], next_cursor: 'abc' });
    await client.services.getByClientId('billing/svc');
    expect(sent.map((r) => r.url)).toEqual([
      `${base}/admin/m2m-clients`,
      `${base}/admin/m2m-clients?status=disabled&scope=gsku%3Aread&client_id_prefix=a%26b&include_revoked=true`,
      `${base}/admin/m2m-clients?include_revoked=false&limit=10&cursor=c%3D1`,
      `${base}/admin/m2m-clients/by-client-id/billing%2Fsvc`,
    ]);
  });

  it('escapes ids into the path', async () => {
    const { fetch, sent } = scriptedFetch(json(404, { error: 'not_found', message: 'Not found' }));
    const client = createAuthClient({ apiBaseUrl: `${base}/`, appCode: 'x', fetch });
    await failure(client.services.get('../auth/me?x=1'));
    expect(sent[0]!.url).toBe(`${base}/admin/m2m-clients/..%2Fauth%2Fme%3Fx%3D1`);
  });

  it('uses an async storage and an unbound global fetch by default', async () => {
    const values = new Map<string, string>();
    const storage: TokenStorage = {
      get: async () => values.get('t'),
      set: async (token) => void values.set('t', token),
      remove: async () => void values.delete('t'),
    };
    const original = globalThis.fetch;
    const { fetch, sent } = scriptedFetch(loginAnswer('tok-async'), json(200, { clients: [] }));
    // Replaced after createAuthClient: the default looks fetch up per call (polyfills, test doubles).
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', storage });
    globalThis.fetch = function (this: unknown, input: string | URL | Request, init?: RequestInit) {
      // A browser's fetch throws "Illegal invocation" when `this` is another object.
      if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
      return fetch(String(input), init as Parameters<FetchLike>[1]);
    } as typeof globalThis.fetch;
    try {
      await client.auth.login({ email: 'a@example.com', password: 'pw' });
      expect(values.get('t')).toBe('tok-async');
      expect(await client.services.list()).toEqual([]);
      expect(sent[1]!.headers.authorization).toBe('Bearer tok-async');
    } finally {
      globalThis.fetch = original;
    }
  });

  it('rejects bad options with a TypeError', () => {
    expect(() => createAuthClient({ apiBaseUrl: 'auth.example.com/api/v1', appCode: 'x' })).toThrow(TypeError);
    expect(() => createAuthClient({ apiBaseUrl: 'ftp://auth.example.com/api/v1', appCode: 'x' })).toThrow(TypeError);
    expect(() => createAuthClient({ apiBaseUrl: base, appCode: '' })).toThrow(TypeError);
    // Every route lives under the version prefix: a server root alone would 404 on every call.
    for (const apiBaseUrl of ['https://auth.example.com', 'https://auth.example.com/', 'https://auth.example.com/api', 'https://auth.example.com/api/v1/admin', 'https://auth.example.com/api/v1?x=1']) {
      expect(() => createAuthClient({ apiBaseUrl, appCode: 'x' }), apiBaseUrl).toThrow(/apiBaseUrl must be the API root with its version prefix/);
    }
    expect(() => createAuthClient({ apiBaseUrl: base, appCode: 'bad\nheader' })).toThrow(TypeError);
  });
});

describe('answers', () => {
  it('maps the server error body to code, status, message, details and Retry-After', async () => {
    const details = [{ path: 'body.client_id', message: 'must be lower-case' }];
    const { fetch } = scriptedFetch(
      json(400, { error: 'validation_failed', message: 'The request is invalid', details }),
      json(429, { error: 'rate_limited', message: 'Too many requests; retry later' }, { 'retry-after': '42' }),
    );
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch });
    const invalid = await failure(client.services.create({ client_id: 'X', name: 'n' }));
    expect({ code: invalid.code, status: invalid.status, message: invalid.message, details: invalid.details }).toEqual({
      code: 'validation_failed',
      status: 400,
      message: 'The request is invalid',
      details,
    });
    expect(invalid.name).toBe('AuthClientError');
    const limited = await failure(client.services.list());
    expect([limited.code, limited.status, limited.retryAfterSec]).toEqual(['rate_limited', 429, 42]);
  });

  it('turns a non-JSON error page into a code from its status', async () => {
    const html = (status: number) => new Response('<html><body>Bad gateway</body></html>', { status, headers: { 'content-type': 'text/html' } });
    const { fetch } = scriptedFetch(html(502), html(418));
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch });
    const gateway = await failure(client.services.list());
    expect([gateway.code, gateway.status]).toEqual(['service_unavailable', 502]);
    expect(gateway.message).toContain('not JSON');
    const odd = await failure(client.services.list());
    expect([odd.code, odd.status]).toEqual(['http_error', 418]);
  });

  it('a 2xx that is not the expected JSON is invalid_response (a wrong apiBaseUrl serving an HTML app)', async () => {
    const page = () => new Response('<!doctype html><title>app</title>', { status: 200, headers: { 'content-type': 'text/html' } });
    const { fetch } = scriptedFetch(page, json(200, { items: [] }), page);
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch });
    expect((await failure(client.auth.me())).code).toBe('invalid_response');
    expect((await failure(client.services.list())).code).toBe('invalid_response');
    const notReady = await failure(client.ready());
    expect(notReady.code).toBe('incompatible_server');
  });

  it('an answer past 64 KiB is cancelled and refused as invalid_response, never buffered whole', async () => {
    let pulled = 0;
    let cancelled = false;
    const endless = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            pulled += 16 * 1024;
            controller.enqueue(new Uint8Array(16 * 1024).fill(0x20));
          },
          cancel() {
            cancelled = true;
          },
        }),
        { status: 200, headers: { 'content-type': 'application/json' } },
      );
    const { fetch } = scriptedFetch(endless, json(200, { clients: [] }, { 'content-length': String(10 * 1024 * 1024) }));
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'app', fetch });
    const err = await failure(client.services.list());
    expect([err.code, err.status]).toEqual(['invalid_response', 200]);
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(1024 * 1024);
    expect((await failure(client.services.list())).code).toBe('invalid_response');
  });

  it('a fetch that throws is network_error, with the cause kept', async () => {
    const cause = new TypeError('fetch failed');
    const { fetch } = scriptedFetch(cause);
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch }).services.list());
    expect([err.code, err.status, err.cause]).toEqual(['network_error', 0, cause]);
  });

  it('a login without a token in the answer stores nothing', async () => {
    const storage = createMemoryStorage();
    const { fetch } = scriptedFetch(json(200, { user: {} }));
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch, storage }).auth.login({ email: 'a@example.com', password: 'pw' }));
    expect(err.code).toBe('invalid_response');
    expect(storage.get()).toBeUndefined();
  });
});

describe('the stored token', () => {
  it('a 401 removes the token that was sent, not one a later login stored', async () => {
    const storage = createMemoryStorage();
    storage.set('old');
    let client = createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch: scriptedFetch(json(401, { error: 'unauthorized', message: 'expired' })).fetch });
    expect((await failure(client.services.list())).code).toBe('unauthorized');
    expect(storage.get()).toBeUndefined();

    // The 401 for "old" arrives after a new login stored "new": "new" stays.
    storage.set('old');
    client = createAuthClient({
      apiBaseUrl: base,
      appCode: 'x',
      storage,
      fetch: scriptedFetch(() => {
        storage.set('new');
        return json(401, { error: 'unauthorized', message: 'expired' });
      }).fetch,
    });
    await failure(client.services.list());
    expect(storage.get()).toBe('new');
  });

  it('a 403 keeps the token', async () => {
    const storage = createMemoryStorage();
    storage.set('tok');
    const { fetch } = scriptedFetch(json(403, { error: 'forbidden', message: 'no' }));
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch }).services.list());
    expect([err.code, err.status]).toEqual(['forbidden', 403]);
    expect(storage.get()).toBe('tok');
  });
});

describe('signing out', () => {
  it('logout() ends the session on the server with the stored token, then forgets it', async () => {
    const storage = createMemoryStorage();
    storage.set('tok-1');
    const { fetch, sent } = scriptedFetch(json(204, null));
    await createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch }).auth.logout();
    expect(sent.map((r) => [r.method, r.url, r.headers.authorization, r.body])).toEqual([['POST', `${base}/auth/logout`, 'Bearer tok-1', undefined]]);
    expect(sent[0]!.headers).not.toHaveProperty('content-type');
    expect(storage.get()).toBeUndefined();
  });

  it('logout() without a stored token sends nothing; a 401 (no such session) is a successful sign-out', async () => {
    const none = scriptedFetch();
    await createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch: none.fetch }).auth.logout();
    expect(none.sent).toEqual([]);

    const storage = createMemoryStorage();
    storage.set('stale');
    const { fetch } = scriptedFetch(json(401, { error: 'unauthorized', message: 'The token is invalid or expired' }));
    await createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch }).auth.logout();
    expect(storage.get()).toBeUndefined();
  });

  it('logout() forgets the token even when the server cannot be reached, and says so', async () => {
    const storage = createMemoryStorage();
    storage.set('tok');
    const { fetch } = scriptedFetch(new TypeError('fetch failed'));
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch }).auth.logout());
    expect(err.code).toBe('network_error');
    expect(storage.get()).toBeUndefined();
  });

  it('revokeAllSessions() and changePassword() call their routes', async () => {
    const storage = createMemoryStorage();
    storage.set('tok');
    const { fetch, sent } = scriptedFetch(json(204, null), json(200, { revoked_count: 3 }));
    const client = createAuthClient({ apiBaseUrl: base, appCode: 'x', storage, fetch });
    await expect(client.auth.changePassword({ current_password: 'old', new_password: 'a new long password' })).resolves.toBeUndefined();
    expect(storage.get()).toBe('tok');
    await expect(client.auth.revokeAllSessions()).resolves.toEqual({ revoked_count: 3 });
    expect(storage.get()).toBeUndefined();
    expect(sent.map((r) => [r.method, r.url, r.body])).toEqual([
      ['POST', `${base}/auth/password`, JSON.stringify({ current_password: 'old', new_password: 'a new long password' })],
      ['POST', `${base}/auth/sessions/revoke-all`, undefined],
    ]);
  });
});

describe('ready()', () => {
  const metadata = (tokenEndpoint: string) => ({
    issuer: 'https://auth.example.com',
    token_endpoint: tokenEndpoint,
    grant_types_supported: ['client_credentials'],
  });

  it('reads the metadata at the server root, below a path prefix too', async () => {
    const { fetch, sent } = scriptedFetch(
      json(200, metadata('https://auth.example.com/api/v1/oauth/token')),
      json(200, { ...metadata('https://example.com/auth/api/v1/oauth/token'), issuer: 'https://example.com/auth' }),
    );
    await createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch }).ready();
    await createAuthClient({ apiBaseUrl: 'https://example.com/auth/api/v1/', appCode: 'x', fetch }).ready();
    expect(sent.map((r) => r.url)).toEqual([
      'https://auth.example.com/.well-known/oauth-authorization-server',
      'https://example.com/auth/.well-known/oauth-authorization-server',
    ]);
    expect(sent[0]!.headers.authorization).toBeUndefined();
  });

  it('refuses metadata for another origin: another issuer, or a token endpoint elsewhere', async () => {
    const cases = [
      [{ ...metadata(`${base}/oauth/token`), issuer: 'https://evil.example' }, /names the issuer "https:\/\/evil.example", not https:\/\/auth.example.com/],
      [metadata('https://evil.example/api/v1/oauth/token'), /token endpoint \(https:\/\/evil.example\/api\/v1\/oauth\/token\) is not https:\/\/auth.example.com\/api\/v1\/oauth\/token/],
      [metadata('http://auth.example.com/api/v1/oauth/token'), /is not https:\/\/auth.example.com\/api\/v1\/oauth\/token/],
      [metadata('https://auth.example.com/other/api/v1/oauth/token'), /is not https:/],
    ] as const;
    for (const [body, message] of cases) {
      const { fetch } = scriptedFetch(json(200, body));
      const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch }).ready());
      expect(err.code).toBe('incompatible_server');
      expect(err.message).toMatch(message);
    }
  });

  it('refuses metadata without client_credentials', async () => {
    const { fetch } = scriptedFetch(json(200, { ...metadata(`${base}/oauth/token`), grant_types_supported: ['authorization_code'] }));
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch }).ready());
    expect(err.code).toBe('incompatible_server');
  });

  it('passes a 503 through as service_unavailable', async () => {
    const { fetch } = scriptedFetch(json(503, { error: 'service_unavailable', message: 'later' }));
    const err = await failure(createAuthClient({ apiBaseUrl: base, appCode: 'x', fetch }).ready());
    expect([err.code, err.status]).toEqual(['service_unavailable', 503]);
  });
});
