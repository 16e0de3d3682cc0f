import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { devSecretFrom } from '../src/dev-secret.js';

const strong = 'kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}

describe('loadConfig', () => {
  it('has working defaults for development', () => {
    const config = loadConfig({ JWT_ACCESS_SECRET: strong });
    expect(config).toMatchObject({ env: 'development', port: 3000, host: '127.0.0.1', databaseUrl: undefined, dataDir: './.data', serviceTokenTtlSec: 900, bcryptCost: 10 });
  });

  it('production refuses a missing DATABASE_URL and a weak or placeholder secret, one line each', () => {
    expect(problems({ NODE_ENV: 'production', JWT_ACCESS_SECRET: strong, JWT_ISSUER: 'https://auth.example.com' })).toEqual([
      expect.stringMatching(/^DATABASE_URL: is required when NODE_ENV=production/),
    ]);
    expect(problems({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ACCESS_SECRET: strong })).toEqual([
      expect.stringMatching(/^JWT_ISSUER: must be the public https:\/\/ origin/),
    ]);
    expect(problems({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com', JWT_ACCESS_SECRET: 'short' })).toEqual([
      expect.stringMatching(/^JWT_ACCESS_SECRET: must be at least 32 bytes/),
    ]);
    expect(problems({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com', JWT_ACCESS_SECRET: 'changeme-changeme-changeme-changeme-42' })).toEqual([
      expect.stringMatching(/^JWT_ACCESS_SECRET: looks like a placeholder/),
    ]);
    expect(problems({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com' })).toEqual([
      expect.stringMatching(/^JWT_ACCESS_SECRET: is required/),
    ]);
    expect(problems({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com', JWT_ACCESS_SECRET: strong, BCRYPT_COST: '8' })).toEqual([
      expect.stringMatching(/^BCRYPT_COST: must be at least 10/),
    ]);
    expect(loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ACCESS_SECRET: strong, JWT_ISSUER: 'https://auth.example.com' }).databaseUrl).toBe(
      'postgres://db/auth',
    );
    // A strong secret that merely starts with a placeholder-ish word is fine.
    expect(loadConfig({ JWT_ACCESS_SECRET: `dev${strong}` }).jwt.secret).toBe(`dev${strong}`);
    expect(problems({ JWT_ISSUER: 'https://auth.example.com/some/path', JWT_ACCESS_SECRET: strong })).toEqual([expect.stringMatching(/^JWT_ISSUER: must be an origin/)]);
    expect(problems({ TRUST_PROXY: 'everyone', JWT_ACCESS_SECRET: strong })).toEqual([expect.stringMatching(/^TRUST_PROXY: /)]);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1', JWT_ACCESS_SECRET: strong }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
  });

  it('derives the default issuer from where the server listens', () => {
    const issuer = (env: Record<string, string>) => loadConfig({ JWT_ACCESS_SECRET: strong, ...env });
    expect(issuer({})).toMatchObject({ jwt: { issuer: 'http://127.0.0.1:3000' }, issuerDerived: true });
    expect(issuer({ PORT: '3002' }).jwt.issuer).toBe('http://127.0.0.1:3002');
    expect(issuer({ HOST: 'auth.internal', PORT: '8080' }).jwt.issuer).toBe('http://auth.internal:8080');
    expect(issuer({ HOST: '0.0.0.0', PORT: '3002' }).jwt.issuer).toBe('http://127.0.0.1:3002');
    expect(issuer({ HOST: '::', PORT: '3002' }).jwt.issuer).toBe('http://[::1]:3002');
    expect(issuer({ HOST: '::1' }).jwt.issuer).toBe('http://[::1]:3000');
    expect(issuer({ PORT: '3002', JWT_ISSUER: 'http://localhost:9999/' })).toMatchObject({ jwt: { issuer: 'http://localhost:9999' }, issuerDerived: false });
    // Port 0 is only chosen at start: no issuer can be derived from it.
    expect(problems({ JWT_ACCESS_SECRET: strong, PORT: '0' })).toEqual([expect.stringMatching(/^JWT_ISSUER: is required with PORT=0/)]);
    expect(issuer({ PORT: '0', JWT_ISSUER: 'http://127.0.0.1:1234' }).port).toBe(0);
  });

  it('treats an empty setting as unset: PORT= is the default port, not a random one', () => {
    const config = loadConfig({ JWT_ACCESS_SECRET: strong, PORT: '', HOST: ' ', BCRYPT_COST: '', NODE_ENV: '', LOG_LEVEL: '', JWT_ISSUER: '' });
    expect(config).toMatchObject({ port: 3000, host: '127.0.0.1', bcryptCost: 10, env: 'development', logLevel: 'info', jwt: { issuer: 'http://127.0.0.1:3000' } });
  });

  it('names every bad value', () => {
    const list = problems({ PORT: 'eighty', BCRYPT_COST: '40', SERVICE_TOKEN_TTL: '5', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud', JWT_ACCESS_SECRET: strong });
    expect(list.map((p) => p.split(':')[0]).sort()).toEqual(['BCRYPT_COST', 'DATABASE_URL', 'LOG_LEVEL', 'PORT', 'SERVICE_TOKEN_TTL']);
    expect(list.every((p) => !p.includes('\n'))).toBe(true);
  });

  it('development: a missing secret comes from the fallback; a weak one is refused', () => {
    expect(loadConfig({}, () => strong).jwt.secret).toBe(strong);
    expect(problems({ JWT_ACCESS_SECRET: 'short' })).toEqual([expect.stringMatching(/^JWT_ACCESS_SECRET: must be at least 32 bytes/)]);
  });
});

describe('devSecretFrom', () => {
  it('generates a secret once, keeps it private in the data folder, and reuses it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'authapi-')), 'data');
    const warnings: string[] = [];
    const first = devSecretFrom(dir, 'jwt', (m) => warnings.push(m));
    expect(first.length).toBeGreaterThanOrEqual(64);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain(first);
    expect(statSync(join(dir, 'jwt-access-secret')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'jwt-access-secret'), 'utf8').trim()).toBe(first);
    expect(devSecretFrom(dir, 'jwt', (m) => warnings.push(m))).toBe(first);
    expect(warnings).toHaveLength(1);
  });
});

describe('CLIENT_SECRET_HASH and CLIENT_SECRET_PEPPER', () => {
  const prod = { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com', JWT_ACCESS_SECRET: strong };
  const pepper = 'Pq8wE3rT6yU1iO4pA7sD0fG2hJ5kL9zX3cV6bN8mQ1wE';

  it('bcrypt by default, no pepper needed', () => {
    expect(loadConfig(prod).clientSecrets).toEqual({ hash: 'bcrypt', pepper: undefined });
  });

  it('hmac-sha256 needs a strong pepper in production, distinct from the JWT secret', () => {
    expect(problems({ ...prod, CLIENT_SECRET_HASH: 'hmac-sha256' })).toEqual([expect.stringMatching(/^CLIENT_SECRET_PEPPER: is required when CLIENT_SECRET_HASH=hmac-sha256/)]);
    expect(problems({ ...prod, CLIENT_SECRET_HASH: 'hmac-sha256', CLIENT_SECRET_PEPPER: 'short' })).toEqual([expect.stringMatching(/^CLIENT_SECRET_PEPPER: must be at least 32 bytes/)]);
    expect(problems({ ...prod, CLIENT_SECRET_HASH: 'hmac-sha256', CLIENT_SECRET_PEPPER: strong })).toEqual([expect.stringMatching(/^CLIENT_SECRET_PEPPER: must differ from JWT_ACCESS_SECRET/)]);
    expect(problems({ ...prod, CLIENT_SECRET_HASH: 'sha1' })).toEqual([expect.stringMatching(/^CLIENT_SECRET_HASH: must be bcrypt or hmac-sha256/)]);
    const config = loadConfig({ ...prod, CLIENT_SECRET_HASH: 'hmac-sha256', CLIENT_SECRET_PEPPER: pepper });
    expect(config.clientSecrets).toEqual({ hash: 'hmac-sha256', pepper: Buffer.from(pepper) });
    // Kept for existing hmac secrets after switching back to bcrypt.
    expect(loadConfig({ ...prod, CLIENT_SECRET_PEPPER: pepper }).clientSecrets).toEqual({ hash: 'bcrypt', pepper: Buffer.from(pepper) });
  });

  it('development generates the pepper into DATA_DIR (mode 0600) and keeps it across starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pepper-'));
    const warnings: string[] = [];
    const env = { JWT_ACCESS_SECRET: strong, CLIENT_SECRET_HASH: 'hmac-sha256', DATA_DIR: dir };
    const first = loadConfig(env, undefined, undefined, () => devSecretFrom(dir, 'pepper', (m) => warnings.push(m)));
    const second = loadConfig(env, undefined, undefined, () => devSecretFrom(dir, 'pepper', (m) => warnings.push(m)));
    expect(first.clientSecrets.pepper!.length).toBeGreaterThanOrEqual(32);
    expect(second.clientSecrets.pepper).toEqual(first.clientSecrets.pepper);
    expect(readFileSync(join(dir, 'client-secret-pepper'), 'utf8').trim()).toBe(first.clientSecrets.pepper!.toString());
    expect(statSync(join(dir, 'client-secret-pepper')).mode & 0o777).toBe(0o600);
    expect(warnings).toEqual([expect.stringMatching(/^CLIENT_SECRET_PEPPER is not set: generated one/)]);
    // Not asked for with bcrypt.
    expect(loadConfig({ JWT_ACCESS_SECRET: strong }, undefined, undefined, () => { throw new Error('not needed'); }).clientSecrets.pepper).toBeUndefined();
  });
});
