import type { AddressInfo } from 'node:net';
import { ServiceTokenManager } from '@rw3iss/auth-server-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

/**
 * End to end over real sockets: a fleet of 20 ServiceTokenManagers renewing
 * against the real auth-api through a secret rotation. Half read their secret
 * from a "secret manager" (a clientSecret function), half were started with
 * the old secret as a string and are replaced (redeployed) midway. The old
 * secret expires at its time on the server's (injected) clock; not one
 * getToken() call fails, and each secret's last_used_at tells the story.
 */
const FLEET = 20;
let now = Date.now();
let ctx: TestContext;
let tokenEndpoint: string;
beforeAll(async () => {
  ctx = await createTestContext({ clock: () => now });
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  tokenEndpoint = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/api/v1/oauth/token`;
});
afterAll(() => ctx?.close());

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe('secret rotation with a fleet of ServiceTokenManagers', () => {
  it('zero failed getToken() calls through add → deploy → old secret expires; per-secret last_used_at', async () => {
    const created = await createClient(ctx, { client_id: 'fleet-svc', name: 'Fleet', scopes: ['gsku:publish'] });
    const secretsUrl = `/api/v1/admin/m2m-clients/${created.client.id}/secrets`;
    const listSecrets = async () =>
      (await ctx.app.inject({ method: 'GET', url: secretsUrl, headers: bearer(ctx.adminToken) })).json().secrets as { id: string; last_used_at: string | null; expires_at: string | null }[];
    // What a secret manager holds for this service.
    const vault = { secret: created.client_secret };
    let reads = 0;
    const fromVault = async () => {
      reads += 1;
      await sleep(1);
      return vault.secret;
    };
    const managers: ServiceTokenManager[] = Array.from(
      { length: FLEET },
      (_, i) => new ServiceTokenManager({ tokenEndpoint, clientId: 'fleet-svc', clientSecret: i % 2 === 0 ? fromVault : created.client_secret, retry: { maxAttempts: 2 } }),
    );

    const outcome = { ok: 0, failed: [] as unknown[] };
    let running = true;
    // Each manager renews again and again (a token dropped after each use, as after a downstream 401).
    const rounds: Promise<void>[] = [];
    const loops = managers.map(async (_, i) => {
      while (running) {
        const manager = managers[i]!;
        rounds[i] = (async () => {
          try {
            const token = await manager.getToken();
            outcome.ok += 1;
            manager.invalidate(token);
          } catch (err) {
            outcome.failed.push(err);
          }
        })();
        await rounds[i];
        await sleep(5);
      }
    });
    const progress = async (grants: number) => {
      const target = outcome.ok + grants;
      for (let i = 0; i < 2000 && outcome.ok < target; i++) await sleep(10);
      expect(outcome.ok).toBeGreaterThanOrEqual(target);
    };

    await progress(FLEET * 2);
    // 1. Add a secret; the old one expires in 10 minutes.
    now += 1000;
    const added = await ctx.app.inject({ method: 'POST', url: secretsUrl, headers: bearer(ctx.adminToken), payload: { expire_previous_in: 600 } });
    expect(added.statusCode).toBe(201);
    const { secret: newSecret, client_secret: newValue } = added.json();
    await progress(FLEET * 2);
    // 2. Deploy: the secret manager holds the new secret; the string-configured half is redeployed with it.
    vault.secret = newValue;
    for (let i = 1; i < FLEET; i += 2) {
      const old = managers[i]!;
      managers[i] = new ServiceTokenManager({ tokenEndpoint, clientId: 'fleet-svc', clientSecret: newValue, retry: { maxAttempts: 2 } });
      // Drained, as a rolling deploy does: the call in flight finishes first.
      await rounds[i];
      await old.close();
    }
    await progress(FLEET * 2);
    // The function-configured half still uses the old secret (it is live): both are in use.
    const [during, old] = await listSecrets();
    expect(during!.id).toBe(newSecret.id);
    expect(during!.last_used_at).not.toBeNull();
    expect(old!.last_used_at).not.toBeNull();
    expect(old!.expires_at).toBe(new Date(now + 600_000).toISOString());
    const readsBeforeExpiry = reads;

    // 3. The old secret expires at its time: the vault-reading half gets invalid_client once,
    // reads the vault again and carries on with the new secret, without a failed getToken().
    now += 600_000;
    await progress(FLEET * 4);
    running = false;
    await Promise.all(loops);
    expect(outcome.failed).toEqual([]);
    expect(outcome.ok).toBeGreaterThan(FLEET * 10);
    // Each vault-reading manager re-read at most once per refusal wave (10 managers).
    expect(reads - readsBeforeExpiry).toBeGreaterThanOrEqual(1);
    expect(reads - readsBeforeExpiry).toBeLessThanOrEqual(FLEET / 2);

    // last_used_at: the old secret's last use is before its expiry, the new one's after it.
    let [fresh, expired] = await listSecrets();
    for (let i = 0; i < 100 && Date.parse(fresh!.last_used_at!) < Date.parse(expired!.expires_at!); i++) {
      await sleep(20);
      [fresh, expired] = await listSecrets();
    }
    expect(Date.parse(expired!.last_used_at!)).toBeLessThan(Date.parse(expired!.expires_at!));
    expect(Date.parse(fresh!.last_used_at!)).toBeGreaterThanOrEqual(Date.parse(expired!.expires_at!));
    // The old secret is refused from its expiry on.
    const res = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'fleet-svc', client_secret: created.client_secret }).toString(),
    });
    expect(res.status).toBe(401);
    await Promise.all(managers.map((m) => m.close()));
  }, 120_000);
});
