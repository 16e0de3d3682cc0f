import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const workspaceRoot = fileURLToPath(new URL('../../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'auth-server-ts-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const EXPECTED = {
  '.': [
    'ACCESS_TOKEN_TYP',
    'AuthServerError',
    'ServiceTokenManager',
    'TokenRequestError',
    'TokenVerificationError',
    'bearerErrorResponse',
    'createServiceTokenVerifier',
    'keyIdForSecret',
  ],
  './fastify': ['requireServiceToken', 'serviceTokenPlugin'],
  './express': ['requireServiceToken'],
  './guard': ['authenticate', 'bearerErrorResponse', 'bearerToken', 'toRequirement'],
};

/** A script that loads every entry with `load` and lists its exports. */
const probe = (load: 'await import' | 'require') => `
const result = {};
for (const entry of ${JSON.stringify(Object.keys(EXPECTED))}) {
  result[entry] = Object.keys(${load}('@rw3iss/auth-server-ts' + entry.slice(1))).sort();
}
const root = ${load}('@rw3iss/auth-server-ts');
const verifier = root.createServiceTokenVerifier({ secret: 'x'.repeat(32), issuer: 'i', audience: 'a' });
const manager = new root.ServiceTokenManager({ tokenEndpoint: 'http://127.0.0.1:9/t', clientId: 'c', clientSecret: 's' });
result.works = typeof verifier.verify === 'function' && typeof manager.getToken === 'function';
console.log(JSON.stringify(result));
`;

describe('the packed package', () => {
  it('installs from its tarball outside the workspace and loads with import and require', { timeout: 120_000 }, () => {
    run('pnpm', ['exec', 'tsc', '-b'], packageDir);
    const tarball = join(work, 'package.tgz');
    run('pnpm', ['pack', '--out', tarball], packageDir);

    const files = run('tar', ['-tzf', tarball], work).trim().split('\n').sort();
    expect(files).toContain('package/dist/index.js');
    expect(files).toContain('package/dist/index.d.ts');
    expect(files).toContain('package/dist/fastify.js');
    expect(files).toContain('package/dist/express.d.ts');
    expect(files).toContain('package/dist/guard.d.ts');
    expect(files).toContain('package/README.md');
    expect(files.filter((f) => !f.startsWith('package/dist/') && f !== 'package/package.json' && f !== 'package/README.md')).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map') || f.endsWith('.tsbuildinfo'))).toEqual([]);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    run('npm', ['install', tarball, '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', '--prefer-offline'], app);
    // Optional peers stay out: the entries must load without fastify or express.
    expect(existsSync(join(app, 'node_modules/fastify'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/express'))).toBe(false);

    writeFileSync(join(app, 'probe.mjs'), probe('await import'));
    writeFileSync(join(app, 'probe.cjs'), probe('require'));
    for (const script of ['probe.mjs', 'probe.cjs']) {
      const output = JSON.parse(run(process.execPath, [script], app));
      expect(output, script).toEqual({ ...EXPECTED, works: true });
    }

    // Types resolve through the exports map for a NodeNext consumer without fastify or express.
    writeFileSync(
      join(app, 'consumer.ts'),
      [
        "import { ServiceTokenManager, createServiceTokenVerifier, type ServicePrincipal } from '@rw3iss/auth-server-ts';",
        "import { requireServiceToken } from '@rw3iss/auth-server-ts/express';",
        "const verifier = createServiceTokenVerifier({ secret: 'x'.repeat(32), issuer: 'i', audience: false });",
        'export const guard = requireServiceToken(verifier, "a:b");',
        "export const m = new ServiceTokenManager({ tokenEndpoint: 'https://a/t', clientId: 'c', clientSecret: 's' });",
        'export type P = ServicePrincipal;',
      ].join('\n'),
    );
    run(
      process.execPath,
      [
        join(workspaceRoot, 'node_modules/typescript/bin/tsc'),
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--typeRoots',
        join(workspaceRoot, 'node_modules/@types'),
        '--types',
        'node',
        'consumer.ts',
      ],
      app,
    );
  });
});
