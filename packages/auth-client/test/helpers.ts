import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { ADMIN, createTestContext, type TestContext } from '../../auth-api/test/helpers.js';
import { AuthClientError, createAuthClient, type AuthClient } from '../src/index.js';

/** Rejects with an AuthClientError: returns it so the test can assert code, status and details. */
export async function failure(promise: Promise<unknown>): Promise<AuthClientError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthClientError);
  return err as AuthClientError;
}

/**
 * A real auth-api (PGlite in memory) listening on a free loopback port, and a client signed in
 * as ADMIN against it. The caller closes `ctx` (afterAll).
 */
export async function listeningAdmin(): Promise<{ ctx: TestContext; apiBaseUrl: string; admin: AuthClient }> {
  const ctx = await createTestContext();
  try {
    await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const apiBaseUrl = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/api/v1`;
    const admin = createAuthClient({ apiBaseUrl, appCode: 'auth-client-test' });
    await admin.auth.login(ADMIN);
    return { ctx, apiBaseUrl, admin };
  } catch (err) {
    await ctx.close();
    throw err;
  }
}
