import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, TEST_SECRET } from './helpers.js';
import { createEmptyPostgresDatabase, processEnv, runCli } from './process-helpers.js';

// `auth-api keys …` as an operator runs it (the built CLI), on its own database.
const dataDir = join(mkdtempSync(join(tmpdir(), 'auth-api-cli-keys-')), 'data');
let databaseUrl: string | undefined;
let dropDatabase: (() => Promise<void>) | undefined;

beforeAll(async () => {
  if (TEST_DATABASE_URL) ({ url: databaseUrl, drop: dropDatabase } = await createEmptyPostgresDatabase(TEST_DATABASE_URL));
});
afterAll(async () => {
  await dropDatabase?.();
  rmSync(dataDir, { recursive: true, force: true });
});

const cli = (args: string[], vars: Record<string, string> = {}) =>
  runCli(args, processEnv({ NODE_ENV: 'test', DATA_DIR: dataDir, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), JWT_ACCESS_SECRET: TEST_SECRET, ...vars }));

describe('auth-api keys', () => {
  it('rotate: refused under HS256; with ES256 creates one next key (KEK generated into DATA_DIR), then reports it; list shows it', async () => {
    const hs = await cli(['keys', 'rotate']);
    expect(hs.code).toBe(1);
    expect(hs.stderr).toMatch(/^auth-api: keys rotate: conflict: SERVICE_TOKEN_ALG is HS256/);

    const first = await cli(['keys', 'rotate', '--json'], { SERVICE_TOKEN_ALG: 'ES256' });
    expect(first.code).toBe(0);
    const created = JSON.parse(first.stdout);
    expect(created).toMatchObject({ created: true, key: { alg: 'ES256', state: 'next', activated_at: null } });
    expect(first.stderr).toMatch(/KEY_ENCRYPTION_KEY is not set: generated one/);
    expect(statSync(join(dataDir, 'key-encryption-key')).mode & 0o777).toBe(0o600);

    const again = await cli(['keys', 'rotate'], { SERVICE_TOKEN_ALG: 'ES256' });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^a rotation is already scheduled: next key ${created.key.kid} \\(ES256\\)`));

    const list = await cli(['keys', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^KID\s+ALG\s+STATE/);
    expect(list.stdout).toContain(`${created.key.kid}  ES256  next`);
    expect(list.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('production without KEY_ENCRYPTION_KEY refuses an asymmetric alg', async () => {
    const result = await cli(['keys', 'rotate'], {
      NODE_ENV: 'production',
      SERVICE_TOKEN_ALG: 'EdDSA',
      DATABASE_URL: 'postgres://127.0.0.1:1/none',
      JWT_ISSUER: 'https://auth.example.com',
      JWT_ACCESS_SECRET: 'kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^auth-api: invalid configuration: KEY_ENCRYPTION_KEY: is required when SERVICE_TOKEN_ALG=EdDSA/);
  });
});
