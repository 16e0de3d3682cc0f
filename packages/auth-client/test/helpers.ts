import { expect } from 'vitest';
import { AuthClientError } from '../src/index.js';

/** Rejects with an AuthClientError: returns it so the test can assert code, status and details. */
export async function failure(promise: Promise<unknown>): Promise<AuthClientError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthClientError);
  return err as AuthClientError;
}
