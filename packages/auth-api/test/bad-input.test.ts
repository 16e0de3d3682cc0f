import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

let ctx: TestContext;
let existingId: string;
beforeAll(async () => {
  ctx = await createTestContext();
  existingId = (await createClient(ctx, { client_id: 'existing-svc', name: 'Existing', scopes: ['a:b'] })).client.id;
});
afterAll(() => ctx?.close());

const base = '/api/v1/admin/m2m-clients';

/** Everything a rejected request must not have changed. */
async function snapshot() {
  const db = ctx.database.db;
  return {
    clients: await db.selectFrom('m2m_clients').selectAll().orderBy('id').execute(),
    audit: (await db.selectFrom('audit_log').select('id').where('action', 'like', 'm2m_client.%').execute()).length,
  };
}

async function expectRejected(
  request: { method: 'POST' | 'PATCH' | 'GET' | 'DELETE'; url: string; payload?: unknown; headers?: Record<string, string> },
  status: number,
  code: string,
) {
  const before = await snapshot();
  const res = await ctx.app.inject({
    method: request.method,
    url: request.url,
    headers: { ...bearer(ctx.adminToken), ...request.headers },
    ...(request.payload === undefined ? {} : { payload: request.payload as string }),
  });
  expect({ status: res.statusCode, error: res.json().error }).toEqual({ status, error: code });
  expect(typeof res.json().message).toBe('string');
  // Typed, so a browser never guesses one: an error body can echo what was sent.
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(res.body).not.toMatch(/at .*\.(ts|js):\d+/); // no stack trace
  expect(await snapshot()).toEqual(before);
  return res.json();
}

describe('POST /admin/m2m-clients rejects bad bodies and writes nothing', () => {
  const cases: Array<[string, unknown, string?]> = [
    ['missing client_id', { name: 'x' }, 'body.client_id'],
    ['missing name', { client_id: 'abc' }, 'body.name'],
    ['client_id too short', { client_id: 'ab', name: 'x' }, 'body.client_id'],
    ['client_id too long', { client_id: 'a'.repeat(101), name: 'x' }, 'body.client_id'],
    ['client_id bad characters', { client_id: 'bad id!', name: 'x' }],
    ['client_id leading dash', { client_id: '-abc', name: 'x' }],
    ['client_id non-ASCII', { client_id: 'café-svc', name: 'x' }],
    ['client_id wrong type', { client_id: 42, name: 'x' }],
    ['empty name', { client_id: 'abc', name: '   ' }],
    ['NUL in name', { client_id: 'abc', name: 'a\u0000b' }, 'body.name'],
    ['control character in description', { client_id: 'abc', name: 'x', description: 'bell\u0007' }, 'body.description'],
    ['UUID-shaped client_id', { client_id: '7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4', name: 'x' }, 'body.client_id'],
    ['name too long', { client_id: 'abc', name: 'n'.repeat(201) }],
    ['description too long', { client_id: 'abc', name: 'x', description: 'd'.repeat(2001) }],
    ['scope not service:permission', { client_id: 'abc', name: 'x', scopes: ['publish'] }],
    ['scope upper-case', { client_id: 'abc', name: 'x', scopes: ['GSKU:Publish'] }],
    ['scopes not an array', { client_id: 'abc', name: 'x', scopes: 'a:b' }],
    ['too many scopes', { client_id: 'abc', name: 'x', scopes: Array.from({ length: 101 }, (_, i) => `s:p${i}`) }],
    ['audience with a space', { client_id: 'abc', name: 'x', allowed_audiences: ['a b'] }],
    ['unknown field', { client_id: 'abc', name: 'x', client_secret: 'mine' }],
    ['status on create', { client_id: 'abc', name: 'x', status: 'active' }],
    ['array body', [{ client_id: 'abc', name: 'x' }]],
    ['null body', null],
  ];
  for (const [label, payload, path] of cases) {
    it(label, async () => {
      const body = await expectRejected({ method: 'POST', url: base, payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } }, 400, 'validation_failed');
      expect(body.details?.length ?? 0).toBeGreaterThan(0);
      if (path) expect(body.details.map((d: { path: string }) => d.path)).toContain(path);
    });
  }

  it('malformed JSON', () => expectRejected({ method: 'POST', url: base, payload: '{"client_id": ', headers: { 'content-type': 'application/json' } }, 400, 'validation_failed'));
  it('empty JSON body', () => expectRejected({ method: 'POST', url: base, payload: '', headers: { 'content-type': 'application/json' } }, 400, 'validation_failed'));
  it('form body', () =>
    expectRejected({ method: 'POST', url: base, payload: 'client_id=abc&name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'unsupported_media_type'));
  it('text body', () => expectRejected({ method: 'POST', url: base, payload: 'client_id=abc', headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'));
  it('a 415 names the media type expected, in the message and in Accept', async () => {
    const res = await ctx.app.inject({ method: 'POST', url: base, payload: '<x/>', headers: { ...bearer(ctx.adminToken), 'content-type': 'application/xml' } });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({ error: 'unsupported_media_type', message: 'Unsupported Content-Type: send the body as application/json' });
    expect(res.headers.accept).toBe('application/json');
  });
  it('body over the limit', () =>
    expectRejected({ method: 'POST', url: base, payload: JSON.stringify({ client_id: 'abc', name: 'x', description: 'd'.repeat(200_000) }), headers: { 'content-type': 'application/json' } }, 413, 'payload_too_large'));
  it('a duplicate client_id, differently cased', () => expectRejected({ method: 'POST', url: base, payload: { client_id: ' EXISTING-svc', name: 'x' } }, 409, 'conflict'));
});

describe('PATCH /admin/m2m-clients/:id rejects bad bodies and writes nothing', () => {
  const cases: Array<[string, unknown]> = [
    ['empty object', {}],
    ['unknown field', { client_id: 'renamed' }],
    ['secret hash', { client_secret_hash: '$2a$10$abc' }],
    ['bad status', { status: 'revoked' }],
    ['name null', { name: null }],
    ['NUL in name', { name: 'a\u0000' }],
    ['NUL in description', { description: '\u0000' }],
    ['scopes wrong type', { scopes: [1, 2] }],
    ['revoked_at', { revoked_at: null }],
  ];
  for (const [label, payload] of cases) {
    it(label, () => expectRejected({ method: 'PATCH', url: `${base}/${existingId}`, payload }, 400, 'validation_failed'));
  }
});

describe('bad ids in paths', () => {
  for (const id of ['not-a-uuid', '123', 'existing-svc', "' or 1=1 --", '7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4z', encodeURIComponent('../../etc/passwd')]) {
    it(`GET/PATCH/DELETE ${id}`, async () => {
      await expectRejected({ method: 'GET', url: `${base}/${id}` }, 400, 'validation_failed');
      await expectRejected({ method: 'PATCH', url: `${base}/${id}`, payload: { name: 'x' } }, 400, 'validation_failed');
      await expectRejected({ method: 'DELETE', url: `${base}/${id}` }, 400, 'validation_failed');
    });
  }
});

describe('error bodies that echo input are typed JSON', () => {
  // An unknown query key is named in the error; sent to a browser untyped, HTML in it could be rendered.
  const key = encodeURIComponent('<img src=x onerror=alert(1)>');
  it.each([
    ['the revocation feed, no token', `/api/v1/oauth/revocations?${key}=1`, false],
    ['an admin listing', `${base}?${key}=1`, true],
  ])('%s', async (_name, url, asAdmin) => {
    const res = await ctx.app.inject({ method: 'GET', url, headers: asAdmin ? bearer(ctx.adminToken) : {} });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('<img');
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});
