import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, startupWarnings } from '../src/config.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const strong = 'kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok';

/** Every variable named in README's configuration table. */
function documentedVariables(): string[] {
  const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 5));
  const names = new Set<string>();
  for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const first = row.split('|')[1]!;
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]!);
  }
  return [...names];
}

describe('docker/compose.yaml', () => {
  const compose = parse(readFileSync(resolve(ROOT, 'docker/compose.yaml'), 'utf8')) as {
    services: { 'auth-api': { environment: Record<string, string>; ports: string[] } };
  };
  const api = compose.services['auth-api'];

  it('passes every documented setting through, TRUST_PROXY included', () => {
    // Set by the image (NODE_ENV, HOST, PORT), unused in it (DATA_DIR: production needs DATABASE_URL), or set by compose itself.
    const fromImage = new Set(['NODE_ENV', 'HOST', 'PORT', 'DATA_DIR']);
    const documented = documentedVariables();
    expect(documented).toEqual(expect.arrayContaining(['TRUST_PROXY', 'RATE_LIMIT_PER_MINUTE', 'AUTH_FAILURE_LIMIT', 'AUTH_FAILURE_LIMIT_PER_IP', 'AUTH_FAILURE_WINDOW']));
    const missing = documented.filter((name) => !fromImage.has(name) && !(name in api.environment));
    expect(missing).toEqual([]);
    // Each comes from docker/.env by its own name (or is DATABASE_URL, built from the database password).
    for (const [name, value] of Object.entries(api.environment)) {
      if (name !== 'DATABASE_URL') expect(String(value)).toMatch(new RegExp(`^\\$\\{${name}(:[-?]|\\})`));
    }
  });

  it('publishes the plain-HTTP port on loopback by default, never on every interface', () => {
    expect(api.ports).toEqual(['${AUTH_API_BIND:-127.0.0.1}:${AUTH_API_PORT:-3000}:3000']);
  });

  it('docker/.env.example names every variable compose reads from it', () => {
    const example = readFileSync(resolve(ROOT, 'docker/.env.example'), 'utf8');
    const raw = readFileSync(resolve(ROOT, 'docker/compose.yaml'), 'utf8');
    const read = new Set([...raw.matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!));
    const missing = [...read].filter((name) => !new RegExp(`^${name}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });
});

describe('startup warnings', () => {
  const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ACCESS_SECRET: strong, JWT_ISSUER: 'https://auth.example.com' };
  it('production with an https issuer and no TRUST_PROXY: one warning naming TRUST_PROXY', () => {
    expect(startupWarnings(loadConfig(production))).toEqual([expect.stringMatching(/^TRUST_PROXY is unset/)]);
  });
  it('none with TRUST_PROXY set, or outside production', () => {
    expect(startupWarnings(loadConfig({ ...production, TRUST_PROXY: '10.0.0.0/8' }))).toEqual([]);
    expect(startupWarnings(loadConfig({ JWT_ACCESS_SECRET: strong, JWT_ISSUER: 'https://auth.example.com' }))).toEqual([]);
  });
});
