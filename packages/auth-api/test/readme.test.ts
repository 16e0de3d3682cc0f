// The README's walkthrough, run as written: its shell blocks are read from README.md and run
// with bash against the built server (`pnpm start`) and the examples (`pnpm example:*`), on
// free ports and a temporary DATA_DIR. Blocks are marked `<!-- readme-test: NAME -->`:
// `server` and `receiver` are long-running terminals; `session` blocks run in order in one
// shell (the third terminal), then, once the server is stopped as the README says, `cli`.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, processEnv, REPO_ROOT } from './process-helpers.js';
import { markedBlocks } from './readme-blocks.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');


interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A README terminal: `bash -c block` in its own process group (Ctrl-C reaches every process in it). */
function terminal(script: string, env: NodeJS.ProcessEnv, input?: string): Running {
  const child = spawn('bash', ['-c', script], { cwd: REPO_ROOT, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  child.stdin!.end(input ?? '');
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  return { child, output: () => output, exited };
}

function interrupt(running: Running | undefined) {
  if (running?.child.pid !== undefined && running.child.exitCode === null) {
    try {
      process.kill(-running.child.pid, 'SIGINT');
    } catch {
      // already gone
    }
  }
}

// Generous: a first start creates the embedded database (seconds alone, minutes on a loaded machine).
async function waitFor(url: string, running: Running, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) throw new Error(`exited before answering ${url}:\n${running.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer in time:\n${running.output()}`);
}

describe('README walkthrough, as written', () => {
  const work = mkdtempSync(join(tmpdir(), 'auth-api-readme-'));
  let server: Running | undefined;
  let receiver: Running | undefined;
  let port: number;
  let catalogPort: number;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    [port, catalogPort] = [await freePort(), await freePort()];
    env = processEnv({
      // Where the README's defaults would be 127.0.0.1:3000, :3001 and ./.data.
      DATA_DIR: join(work, 'data'),
      PORT: String(port),
      JWT_ISSUER: `http://127.0.0.1:${port}`,
      AUTH_URL: `http://127.0.0.1:${port}`,
      CATALOG_PORT: String(catalogPort),
      CATALOG_URL: `http://127.0.0.1:${catalogPort}`,
      BCRYPT_COST: '4',
      NO_COLOR: '1',
    });
  });
  afterAll(async () => {
    interrupt(receiver);
    interrupt(server);
    await Promise.all([receiver?.exited, server?.exited]);
    rmSync(work, { recursive: true, force: true });
  });

  it('has the blocks the test runs', () => {
    expect(markedBlocks(README, 'server')).toEqual(['pnpm start']);
    expect(markedBlocks(README, 'receiver')).toEqual(['pnpm example:receiving']);
    expect(markedBlocks(README, 'session').length).toBeGreaterThanOrEqual(4);
    expect(markedBlocks(README, 'cli').length).toBe(1);
  });

  it('server, receiving service, curl steps, calling service, then the CLI', async () => {
    server = terminal(markedBlocks(README, 'server').join('\n'), env);
    await waitFor(`http://127.0.0.1:${port}/readyz`, server);
    const password = /^\s*password: (\S+)$/m.exec(server.output())?.[1];
    expect(password, server.output()).toBeDefined();
    expect(server.output()).not.toMatch(/error/i);

    receiver = terminal(markedBlocks(README, 'receiver').join('\n'), env);
    await waitFor(`http://127.0.0.1:${catalogPort}/healthz`, receiver);

    // The third terminal: the session blocks in order, the server stopped (Ctrl-C) as the README
    // says, then the CLI block. The password goes in on stdin, where `read` takes it.
    const stopServer = `kill -INT -- -${server.child.pid}; while kill -0 -- -${server.child.pid} 2>/dev/null; do sleep 0.2; done`;
    const script = ['set -eo pipefail', ...markedBlocks(README, 'session'), 'echo "--- server stopped ---"', stopServer, ...markedBlocks(README, 'cli')].join('\n');
    const session = terminal(script, env, `${password}\n`);
    const code = await session.exited;
    const out = session.output();
    expect(code, out).toBe(0);

    const [walkthrough, cli] = out.split('--- server stopped ---\n');
    const lines = walkthrough!.split('\n');
    // 3. lookups
    expect(lines).toContain('active');
    expect(lines).toContain('billing-svc');
    // the token endpoint by hand: a token for catalog-api with the scope asked for
    const grant = JSON.parse(/^\{[\s\S]*?^\}$/m.exec(walkthrough!)![0]);
    expect(grant).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 900, scope: 'gsku:publish' });
    const claims = JSON.parse(Buffer.from(grant.access_token.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ aud: 'catalog-api', iss: `http://127.0.0.1:${port}`, client_id: 'billing-svc', token_type: 'service' });
    // the calling service got through the receiving one
    expect(walkthrough).toContain(`POST http://127.0.0.1:${catalogPort}/publish → 200 {"published":"SKU-1","by":"billing-svc"}`);
    // disabled, revoked, refused
    const tail = lines.filter(Boolean).slice(-3);
    expect(tail).toEqual(['disabled', '204', 'invalid_client']);
    expect(walkthrough).not.toContain('Admin password:'); // `read -p` prompts only on a terminal

    // the CLI, on the same database once the server stopped
    expect(cli).toMatch(/^created the service credential reports-svc \(id [0-9a-f-]{36}\)$/m);
    expect(cli).toMatch(/^client_id:\s+reports-svc$/m);
    expect(cli).toMatch(/^updated reports-svc /m);
    expect(cli).toMatch(/^disabled reports-svc /m);
    expect(cli).toMatch(/^revoked reports-svc /m);
    expect(cli).toMatch(/^created the system_admin ops@example\.com /m);
  }, 600_000);
});

describe('documentation stays inside the repository', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (['node_modules', '.git', 'dist', '.data', 'vendor'].includes(name)) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(REPO_ROOT);

  it('cites no file that lives outside it (the design card, the toolchain notes)', () => {
    const textual = files.filter((f) => /\.(md|ts|js|json|ya?ml|sh)$|Dockerfile$|\/run$/.test(f) && !f.endsWith('readme.test.ts'));
    const offending = textual.filter((f) => /\b(DESIGN|TOOLCHAIN|CONVENTIONS)\.md\b|\bTOOLCHAIN\b|SEED-/.test(readFileSync(f, 'utf8')));
    expect(offending.map((f) => relative(REPO_ROOT, f))).toEqual([]);
  });

  it('every relative link in a Markdown file names a file or folder in the repository', () => {
    const broken: string[] = [];
    for (const file of files.filter((f) => f.endsWith('.md'))) {
      for (const [, target] of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:|^#/.test(target!)) continue;
        const path = resolve(dirname(file), decodeURI(target!.split('#')[0]!));
        let exists = false;
        try {
          exists = statSync(path) !== undefined;
        } catch {
          // missing
        }
        if (!exists || relative(REPO_ROOT, path).startsWith('..')) broken.push(`${relative(REPO_ROOT, file)}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every package declares the license the repository ships', () => {
    const license = readFileSync(join(REPO_ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License/);
    for (const [dir, manifest] of [
      ['packages/auth-server-ts', 'package.json'],
      ['packages/auth-client', 'package.json'],
      ['packages/auth-server-nest', 'package.json'],
      ['packages/auth-server-laravel', 'composer.json'],
    ] as const) {
      expect(JSON.parse(readFileSync(join(REPO_ROOT, dir, manifest), 'utf8')).license, dir).toBe('MIT');
      expect(readFileSync(join(REPO_ROOT, dir, 'LICENSE'), 'utf8'), `${dir}/LICENSE`).toBe(license);
    }
  });
});

describe('the SDK READMEs', () => {
  it('every TypeScript snippet type-checks as a program of its own against the built packages (no undefined names)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-readme-snippets-'));
    try {
      const files: string[] = [];
      for (const pkg of ['auth-server-ts', 'auth-client']) {
        const blocks = markedBlocks(readFileSync(join(REPO_ROOT, 'packages', pkg, 'README.md'), 'utf8'), 'ts');
        expect(blocks.length, pkg).toBeGreaterThanOrEqual(3);
        blocks.forEach((block, i) => {
          const file = join(dir, `${pkg}-${i + 1}.ts`);
          writeFileSync(file, block);
          files.push(file);
        });
      }
      const sdk = (sub: string) => [join(REPO_ROOT, 'packages/auth-server-ts/dist', `${sub}.d.ts`)];
      const sdkModules = join(REPO_ROOT, 'packages/auth-server-ts/node_modules');
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            lib: ['ES2023', 'DOM'],
            types: ['node'],
            typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
            skipLibCheck: true,
            // As a consumer that installed the packages (and fastify, express) would resolve them.
            paths: {
              '@rw3iss/auth-server-ts': sdk('index'),
              '@rw3iss/auth-server-ts/fastify': sdk('fastify'),
              '@rw3iss/auth-server-ts/express': sdk('express'),
              '@rw3iss/auth-client': [join(REPO_ROOT, 'packages/auth-client/dist/index.d.ts')],
              fastify: [join(sdkModules, 'fastify/fastify.d.ts')],
              express: [join(sdkModules, '@types/express/index.d.ts')],
            },
          },
          files,
        }),
      );
      // Each snippet is a module (it imports), so names do not leak from one into another.
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      try {
        execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8', stdio: 'pipe' });
      } catch (err) {
        const { stdout = '' } = err as { stdout?: string };
        throw new Error(`README snippets do not type-check:\n${stdout}\n${files.map((f, i) => `--- ${f}\n${readFileSync(f, 'utf8')}`).join('\n')}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
