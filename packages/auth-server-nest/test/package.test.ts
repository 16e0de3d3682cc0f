// The packed tarball, installed outside the workspace, in a Nest application compiled with tsc and run with node.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const sdkDir = fileURLToPath(new URL('../../auth-server-ts', import.meta.url));
const workspaceRoot = fileURLToPath(new URL('../../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'auth-server-nest-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The versions the package is tested with (its devDependencies). */
const NEST = ['@nestjs/common@11.2.10', '@nestjs/core@11.2.10', '@nestjs/platform-express@11.2.10', 'reflect-metadata@0.2.2', 'rxjs@7.8.2'];

// A receiving and a calling service in one application: a guarded controller, an injected manager.
const APP = `
import 'reflect-metadata';
import { createHmac } from 'node:crypto';
import { Controller, Get, Injectable, Module, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';
import {
  InjectServiceTokens, Public, RequireScopes, ServicePrincipal, ServiceTokenGuard, ServiceTokenManager, ServiceTokenModule,
} from '@rw3iss/auth-server-nest';

const secret = 'a-consumer-secret-that-is-long-enough-0123';

@Controller('items')
@UseGuards(ServiceTokenGuard)
class ItemsController {
  @Get()
  @RequireScopes('gsku:read')
  list(@ServicePrincipal() caller: ServicePrincipal) {
    return { by: caller.clientId };
  }

  @Get('health')
  @Public()
  health() {
    return { ok: true };
  }
}

@Injectable()
class Outbound {
  constructor(@InjectServiceTokens() readonly tokens: ServiceTokenManager) {}
}

@Module({
  imports: [
    ServiceTokenModule.forRoot({
      verifier: { secret, issuer: 'https://auth.example.com', audience: 'gsku' },
      manager: { tokenEndpoint: 'https://auth.example.com/api/v1/oauth/token', clientId: 'gsku-svc', clientSecret: 'not-used' },
    }),
  ],
  controllers: [ItemsController],
  providers: [Outbound],
})
class AppModule {}

function token(scopes: string[]): string {
  const now = Math.floor(Date.now() / 1000);
  const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(secret) })).toString('base64url');
  const claims = { iss: 'https://auth.example.com', aud: 'gsku', sub: 'caller-svc', client_id: 'caller-svc', service_name: 'Caller',
    token_type: 'service', scopes, scope: scopes.join(' '), iat: now, nbf: now, exp: now + 60, jti: 'j' };
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return head + '.' + body + '.' + createHmac('sha256', secret).update(head + '.' + body).digest('base64url');
}

const app = await NestFactory.create(AppModule, { logger: false });
await app.listen(0, '127.0.0.1');
const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
const get = async (path: string, bearer?: string) => {
  const res = await fetch(url + path, { headers: bearer ? { authorization: 'Bearer ' + bearer } : {} });
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.json() };
};
const result = {
  ok: await get('/items', token(['gsku:read'])),
  scope: await get('/items', token(['gsku:write'])),
  missing: await get('/items'),
  health: await get('/items/health'),
  manager: app.get(Outbound).tokens instanceof ServiceTokenManager,
};
await app.close();
console.log(JSON.stringify(result));
`;

const EXPECTED = {
  ok: { status: 200, challenge: null, body: { by: 'caller-svc' } },
  scope: {
    status: 403,
    challenge: 'Bearer error="insufficient_scope", error_description="The access token lacks the required scope", scope="gsku:read"',
    body: { error: 'insufficient_scope', error_description: 'The access token lacks the required scope', scope: 'gsku:read' },
  },
  missing: { status: 401, challenge: 'Bearer', body: { error: 'missing_token', error_description: 'A bearer token is required' } },
  health: { status: 200, challenge: null, body: { ok: true } },
  manager: true,
};

const tsc = (cwd: string, module: 'nodenext', file: string) =>
  run(
    process.execPath,
    [
      join(workspaceRoot, 'node_modules/typescript/bin/tsc'),
      '--strict',
      '--module',
      module,
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--experimentalDecorators',
      '--emitDecoratorMetadata',
      '--skipLibCheck',
      'false',
      '--typeRoots',
      join(workspaceRoot, 'node_modules/@types'),
      '--types',
      'node',
      '--outDir',
      'dist',
      file,
    ],
    cwd,
  );

describe('the packed package', () => {
  it('installs from its tarball outside the workspace; a Nest app using it compiles with tsc and runs (ESM and CommonJS)', { timeout: 480_000 }, () => {
    run('pnpm', ['exec', 'tsc', '-b'], packageDir);
    const sdkTarball = join(work, 'sdk.tgz');
    const tarball = join(work, 'nest.tgz');
    run('pnpm', ['pack', '--out', sdkTarball], sdkDir);
    run('pnpm', ['pack', '--out', tarball], packageDir);

    const files = run('tar', ['-tzf', tarball], work).trim().split('\n').sort();
    expect(files).toContain('package/dist/index.js');
    expect(files).toContain('package/dist/index.d.ts');
    expect(files).toContain('package/README.md');
    expect(files).toContain('package/LICENSE');
    expect(files.filter((f) => !f.startsWith('package/dist/') && !['package/package.json', 'package/README.md', 'package/LICENSE'].includes(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map') || f.endsWith('.tsbuildinfo'))).toEqual([]);
    const manifest = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json'], work));
    // pnpm pack turns the workspace range into the SDK's version.
    expect(manifest.dependencies).toEqual({ '@rw3iss/auth-server-ts': JSON.parse(run('tar', ['-xzOf', sdkTarball, 'package/package.json'], work)).version });
    // Nest and its companions are the application's: peers, from the versions tested with (installed below).
    expect(manifest.peerDependencies).toEqual({ '@nestjs/common': '^11.2.10', '@nestjs/core': '^11.2.10', 'reflect-metadata': '^0.2.2', rxjs: '^7.8.2' });

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    run('npm', ['install', sdkTarball, tarball, ...NEST, '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', '--prefer-offline'], app);

    writeFileSync(join(app, 'main.ts'), APP);
    tsc(app, 'nodenext', 'main.ts');
    expect(JSON.parse(run(process.execPath, ['dist/main.js'], app))).toEqual(EXPECTED);

    // The same application as CommonJS (Nest's default), which loads the package with require().
    const cjs = join(app, 'cjs');
    mkdirSync(cjs);
    writeFileSync(join(cjs, 'package.json'), JSON.stringify({ name: 'consumer-cjs', private: true, type: 'commonjs' }));
    writeFileSync(join(cjs, 'main.ts'), `${APP.replace(/^const app = await/m, 'async function main() {\nconst app = await')}\n}\nvoid main();\n`);
    tsc(cjs, 'nodenext', 'main.ts');
    expect(JSON.parse(run(process.execPath, ['dist/main.js'], cjs))).toEqual(EXPECTED);
  });
});
