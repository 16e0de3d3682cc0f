// The published artifact: build, pack, install the tarball outside the workspace, import it from Node
// and type-check a consumer against it, and run the documented example from it against a real server.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createTestContext, type TestContext } from '../../auth-api/test/helpers.js';
import { freePort } from '../../auth-api/test/process-helpers.js';

const execFileAsync = promisify(execFile);
/** execFile that puts the command's output into the error, so a failing tsc or npm shows why. */
async function run(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  try {
    return await execFileAsync(file, args, options);
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed:\n${stdout}\n${stderr}`, { cause: err });
  }
}
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');

let workDir: string;
let consumerDir: string;
let packedFiles: string[];
let ctx: TestContext;
let apiBaseUrl: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'auth-client-pack-'));
  consumerDir = join(workDir, 'consumer');
  const server = (async () => {
    // The server's issuer is the URL it is reached at, as ready() checks.
    const port = await freePort();
    ctx = await createTestContext({ env: { JWT_ISSUER: `http://127.0.0.1:${port}` } });
    await ctx.app.listen({ port, host: '127.0.0.1' });
    apiBaseUrl = `http://127.0.0.1:${port}/api/v1`;
  })();

  await run(process.execPath, [tsc, '-b'], { cwd: packageDir });
  const { stdout } = await run('pnpm', ['pack', '--pack-destination', workDir, '--json'], { cwd: packageDir });
  const packed = JSON.parse(stdout) as { filename: string; files: Array<{ path: string }> };
  packedFiles = packed.files.map((f) => f.path);

  await mkdir(consumerDir);
  await writeFile(join(consumerDir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // --offline: the package has no dependencies, so nothing may come from a registry.
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', packed.filename], { cwd: consumerDir });
  await server;
}, 120_000);

afterAll(async () => {
  await ctx?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Runs an ES module script with Node in the consumer folder, where only the tarball is installed. */
const node = (script: string, env: Record<string, string> = {}) =>
  run(process.execPath, ['--input-type=module', '-e', script], { cwd: consumerDir, env: { ...process.env, ...env } });

describe('the packed package', () => {
  it('holds the build, the README and the manifest, and nothing else', () => {
    expect(packedFiles).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/client.js']));
    expect(packedFiles.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE'].includes(f))).toEqual([]);
    expect(packedFiles.filter((f) => /\.map$|\.tsbuildinfo$/.test(f))).toEqual([]);
  });

  it('imports by its name from a plain Node project and exports the public API', async () => {
    const { stdout } = await node(`
      import * as sdk from '@rw3iss/auth-client';
      import { createAuthClient, AuthClientError, createMemoryStorage } from '@rw3iss/auth-client';
      const client = createAuthClient({ apiBaseUrl: 'http://127.0.0.1:1/api/v1', appCode: 'pack-test' });
      const err = new AuthClientError('conflict', 'x', { status: 409 });
      console.log(JSON.stringify({
        exports: Object.keys(sdk).sort(),
        client: [typeof client.ready, ...Object.keys(client.auth), ...Object.keys(client.services)],
        error: [err instanceof Error, err.name, err.code, err.status],
        storage: typeof createMemoryStorage().get,
      }));
    `);
    expect(JSON.parse(stdout)).toEqual({
      exports: ['AuthClientError', 'createAuthClient', 'createMemoryStorage'],
      client: ['function', 'login', 'logout', 'revokeAllSessions', 'changePassword', 'me', 'create', 'list', 'listPage', 'get', 'getByClientId', 'update', 'revoke', 'rotateSecret', 'secrets', 'deleteSecret'],
      error: [true, 'AuthClientError', 'conflict', 409],
      storage: 'function',
    });
  });

  it('runs the documented example against a real server', async () => {
    const { stdout } = await node(
      `
      import { createAuthClient } from '@rw3iss/auth-client';
      const client = createAuthClient({ apiBaseUrl: process.env.API_BASE_URL, appCode: 'auth-client-demo' });
      await client.ready();
      await client.auth.login({ email: 'admin@example.com', password: process.env.ADMIN_PASSWORD });
      const { client: svc, client_secret } = await client.services.create({
        client_id: 'billing-svc', name: 'Billing backend',
        description: 'Issues invoices; needs publish scope on gsku', scopes: ['gsku:publish'] });
      const services = await client.services.list();
      const one = await client.services.get(svc.id);
      await client.services.revoke(svc.id);
      const after = await client.services.list();
      const forbidden = await client.services.create({ client_id: 'billing-svc', name: 'again' }).catch((e) => [e.name, e.code, e.status]);
      console.log(JSON.stringify({ listed: services.map((s) => s.client_id), one: one.client_id, secret: typeof client_secret, after: after.length, forbidden }));
    `,
      { API_BASE_URL: apiBaseUrl, ADMIN_PASSWORD: ADMIN.password },
    );
    expect(JSON.parse(stdout)).toEqual({ listed: ['billing-svc'], one: 'billing-svc', secret: 'string', after: 0, forbidden: ['AuthClientError', 'conflict', 409] });
  });

  it('type-checks TypeScript consumers: browser (DOM lib), Node (@types/node) and neither', async () => {
    // Needs no lib beyond ES2023: the published types declare their own fetch shape.
    await writeFile(
      join(consumerDir, 'consumer.ts'),
      `
      import { AuthClientError, createAuthClient, type FetchLike, type M2MClientRecord, type TokenStorage } from '@rw3iss/auth-client';
      declare const myFetch: FetchLike;
      const storage: TokenStorage = { get: () => null, set: () => {}, remove: async () => {} };
      const client = createAuthClient({ apiBaseUrl: 'https://auth.example.com/api/v1', appCode: 'demo', storage, fetch: myFetch });
      export async function main(): Promise<M2MClientRecord[]> {
        const { client: svc, client_secret } = await client.services.create({ client_id: 'billing-svc', name: 'Billing', scopes: ['gsku:publish'] });
        const secret: string = client_secret;
        await client.services.update(svc.id, { status: 'disabled' });
        try { await client.services.get(svc.id); } catch (err) { if (err instanceof AuthClientError && err.code === 'not_found') return []; }
        // @ts-expect-error: no such code
        if (new AuthClientError('conflict', secret).code === 'no_such_code') return [];
        // @ts-expect-error: the SDK has no client_credentials grant
        await client.services.token();
        return client.services.list();
      }
    `,
    );
    // The platform's fetch fits the fetch option.
    await writeFile(
      join(consumerDir, 'platform-fetch.ts'),
      `import { createAuthClient } from '@rw3iss/auth-client';
      export const client = createAuthClient({ apiBaseUrl: 'https://auth.example.com/api/v1', appCode: 'demo', fetch });`,
    );
    const common = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
    await Promise.all([
      run(process.execPath, [tsc, ...common, '--lib', 'es2023', 'consumer.ts'], { cwd: consumerDir }),
      run(process.execPath, [tsc, ...common, '--lib', 'es2023,dom', 'consumer.ts', 'platform-fetch.ts'], { cwd: consumerDir }),
      run(process.execPath, [tsc, ...common, '--lib', 'es2023', '--types', 'node', '--typeRoots', join(repoRoot, 'node_modules/@types'), 'consumer.ts', 'platform-fetch.ts'], {
        cwd: consumerDir,
      }),
    ]);
  });
});
