// client.audit.list against a real auth-api over a real socket (PGlite in memory), and the
// secret-rotation methods' requests against a scripted fetch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, PLAIN_USER, type TestContext } from '../../auth-api/test/helpers.js';
import { createAuthClient, type AuthClient, type FetchLike } from '../src/index.js';
import { failure, listeningAdmin } from './helpers.js';

let ctx: TestContext;
let apiBaseUrl: string;
let admin: AuthClient;

beforeAll(async () => {
  ({ ctx, apiBaseUrl, admin } = await listeningAdmin());
});
afterAll(() => ctx?.close());

describe('client.audit.list', () => {
  it("a credential's trail, newest first, paged with next_cursor", async () => {
    const { client } = await admin.services.create({ client_id: 'audit-sdk', name: 'Audited' });
    await admin.services.update(client.id, { status: 'disabled' });
    await admin.services.revoke(client.id);

    const trail = await admin.audit.list({ target: client.id });
    expect(trail.next_cursor).toBeNull();
    expect(trail.events.map((e) => [e.action, e.actor, e.target_id])).toEqual([
      ['m2m_client.revoke', ADMIN.email, client.id],
      ['m2m_client.update', ADMIN.email, client.id],
      ['m2m_client.create', ADMIN.email, client.id],
    ]);

    const page1 = await admin.audit.list({ target: client.id, limit: 2 });
    expect(page1.events).toHaveLength(2);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const page2 = await admin.audit.list({ target: client.id, limit: 2, cursor: page1.next_cursor! });
    expect(page2.events.map((e) => e.action)).toEqual(['m2m_client.create']);
    expect(page2.next_cursor).toBeNull();

    const creates = await admin.audit.list({ action: 'm2m_client.create', actor: ADMIN.email, target_type: 'm2m_client', since: '2000-01-01T00:00:00Z' });
    expect(creates.events.map((e) => e.target_id)).toContain(client.id);
  });

  it('errors carry the code and the field: validation_failed on limit, forbidden for a plain user', async () => {
    const bad = await failure(admin.audit.list({ limit: 0 }));
    expect(bad.code).toBe('validation_failed');
    expect(bad.details).toEqual([expect.objectContaining({ path: 'querystring.limit' })]);
    const viewer = createAuthClient({ apiBaseUrl, appCode: 'auth-client-test' });
    await viewer.auth.login(PLAIN_USER);
    expect((await failure(viewer.audit.list())).code).toBe('forbidden');
  });
});

describe('secret rotation methods', () => {
  it('send the documented requests and unwrap the answers', async () => {
    const sent: string[] = [];
    const answers = [
      new Response(JSON.stringify({ secret: { id: 's2', created_at: 'x', last_used_at: null, expires_at: null, hint: 'abcd' }, client_secret: 'm2msk_new' }), { status: 201 }),
      new Response(JSON.stringify({ secrets: [{ id: 's2', created_at: 'x', last_used_at: null, expires_at: null, hint: 'abcd' }] }), { status: 200 }),
      new Response(null, { status: 204 }),
      new Response(JSON.stringify({ error: 'conflict', message: 'The last live secret cannot be deleted' }), { status: 409 }),
    ];
    const fetch: FetchLike = async (url, init) => {
      sent.push(`${init.method} ${url} ${init.body ?? ''}`.trim());
      return answers.shift()!;
    };
    const client = createAuthClient({ apiBaseUrl: 'https://auth.example.com/api/v1', appCode: 'x', fetch });
    const base = 'https://auth.example.com/api/v1/admin/m2m-clients/c1/secrets';
    expect(await client.services.rotateSecret('c1', { expire_previous_in: 3600 })).toMatchObject({ client_secret: 'm2msk_new', secret: { id: 's2' } });
    expect(await client.services.secrets('c1')).toEqual([expect.objectContaining({ id: 's2', hint: 'abcd' })]);
    await client.services.deleteSecret('c1', 's/1');
    expect((await failure(client.services.deleteSecret('c1', 's2'))).code).toBe('conflict');
    expect(sent).toEqual([`POST ${base} {"expire_previous_in":3600}`, `GET ${base}`, `DELETE ${base}/s%2F1`, `DELETE ${base}/s2`]);
  });
});
