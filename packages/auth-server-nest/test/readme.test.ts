// The README's TypeScript snippets, as written: each compiled with tsc as a program of its own
// against the built package, resolved as a consumer that installed it resolves it; then the two
// quick starts run together against a running auth-api: the calling service's CatalogClient sends
// the manager's tokens to the receiving service's guarded routes.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createTestContext, TEST_SECRET, type TestContext } from '../../auth-api/test/helpers.js';
import { freePort } from '../../auth-api/test/process-helpers.js';
import { markedBlocks } from '../../auth-api/test/readme-blocks.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const workspaceRoot = fileURLToPath(new URL('../../..', import.meta.url));
const README = readFileSync(join(packageDir, 'README.md'), 'utf8');
const blocks = markedBlocks(README, 'ts');

const work = mkdtempSync(join(tmpdir(), 'auth-server-nest-readme-'));
let ctx: TestContext | undefined;
afterAll(async () => {
  await ctx?.close();
  rmSync(work, { recursive: true, force: true });
});

/** `node` on `args`; resolves with the exit code and everything printed. */
function runNode(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => done({ code, out }));
  });
}

describe('the Nest README', () => {
  const files: string[] = [];

  beforeAll(() => {
    // node_modules as a consumer's install lays it out: the package, the SDK, Nest (with
    // @nestjs/config, which the forRootAsync snippet uses), reflect-metadata, rxjs.
    const modules = join(work, 'node_modules');
    mkdirSync(join(modules, '@rw3iss'), { recursive: true });
    symlinkSync(packageDir, join(modules, '@rw3iss/auth-server-nest'));
    symlinkSync(join(workspaceRoot, 'packages/auth-server-ts'), join(modules, '@rw3iss/auth-server-ts'));
    for (const name of ['@nestjs', 'reflect-metadata', 'rxjs']) symlinkSync(join(packageDir, 'node_modules', name), join(modules, name));
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'readme-snippets', private: true, type: 'module' }));
    blocks.forEach((block, i) => {
      const file = join(work, `snippet-${i + 1}.ts`);
      writeFileSync(file, block);
      files.push(file);
    });
    writeFileSync(
      join(work, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          types: ['node'],
          typeRoots: [join(workspaceRoot, 'node_modules/@types')],
          skipLibCheck: true,
          outDir: 'dist',
        },
        files,
      }),
    );
  });

  it('marks every TypeScript block for this test', () => {
    expect(blocks.length).toBe([...README.matchAll(/^```ts$/gm)].length);
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  it('every snippet compiles with tsc, each a module of its own, against the built package', async () => {
    const { code, out } = await runNode([join(workspaceRoot, 'node_modules/typescript/bin/tsc'), '-p', work], work, {});
    if (code !== 0) throw new Error(`README snippets do not compile:\n${out}\n${files.map((f) => `--- ${f}\n${readFileSync(f, 'utf8')}`).join('\n')}`);
  }, 120_000);

  it('the receiving and the calling quick starts run as written, against auth-api', async () => {
    const receiving = blocks.findIndex((b) => b.includes('class SkusController'));
    const calling = blocks.findIndex((b) => b.includes('class CatalogClient'));
    expect(receiving).toBeGreaterThanOrEqual(0);
    expect(calling).toBeGreaterThanOrEqual(0);

    // The auth server, its issuer being where it listens (the snippets' AUTH_URL).
    const authPort = await freePort();
    const authUrl = `http://127.0.0.1:${authPort}`;
    ctx = await createTestContext({ env: { JWT_ISSUER: authUrl } });
    await ctx.app.listen({ port: authPort, host: '127.0.0.1' });
    const { client_secret } = await createClient(ctx, { client_id: 'billing-svc', name: 'Billing', scopes: ['gsku:publish', 'gsku:read'] });

    // Both applications in one process, as two services would run; the receiving one listens on CATALOG_URL.
    const catalogPort = await freePort();
    writeFileSync(
      join(work, 'run.mjs'),
      `
import { NestFactory } from '@nestjs/core';
import { ServiceTokenManager } from '@rw3iss/auth-server-nest';
const receiving = await import('./dist/snippet-${receiving + 1}.js');
const calling = await import('./dist/snippet-${calling + 1}.js');
const catalog = await NestFactory.create(receiving.AppModule, { logger: false });
await catalog.listen(${catalogPort}, '127.0.0.1');
const app = await NestFactory.createApplicationContext(calling.AppModule, { logger: false });
const client = app.get(calling.CatalogClient);
const status = async (path, init) => (await fetch(process.env.CATALOG_URL + path, init)).status;
const result = {
  publish: await client.publish('SKU-1'),
  list: await client.list(),
  health: await (await fetch(process.env.CATALOG_URL + '/skus/health')).json(),
  withoutToken: await status('/skus/publish', { method: 'POST' }),
  listWithPublishToken: await status('/skus', { headers: { authorization: await app.get(ServiceTokenManager).authorizationHeader() } }),
};
await app.close();
await catalog.close();
console.log(JSON.stringify(result));
`,
    );
    const { code, out } = await runNode(['run.mjs'], work, {
      AUTH_URL: authUrl,
      JWT_ACCESS_SECRET: TEST_SECRET,
      CATALOG_URL: `http://127.0.0.1:${catalogPort}`,
      BILLING_SVC_SECRET: client_secret,
    });
    expect(code, out).toBe(0);
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({
      // POST /skus/publish with the manager's default token (gsku:publish): the principal is the caller.
      publish: { publishedBy: 'billing-svc' },
      // GET /skus wants gsku:read or gsku:admin: the token asked for with authorizationHeader({ scopes: ['gsku:read'] }).
      list: [],
      health: { ok: true },
      withoutToken: 401,
      // The default token holds gsku:publish only.
      listWithPublishToken: 403,
    });
  }, 240_000);
});
