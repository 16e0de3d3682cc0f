import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { CONSOLE_CSP } from '../src/modules/console/console.routes.js';
import { createTestContext, type TestContext } from './helpers.js';

// GET /admin: the built console (test/build.global.ts builds it), served with its security headers.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.close());

const EXPECTED_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

function expectSecurityHeaders(headers: Record<string, unknown>) {
  expect(headers['content-security-policy']).toBe(EXPECTED_CSP);
  expect(headers['x-frame-options']).toBe('DENY');
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
}

describe('the admin console at /admin', () => {
  it('serves the page with a strict CSP (no unsafe-inline), no framing, no referrer, never cached', async () => {
    expect(CONSOLE_CSP).toBe(EXPECTED_CSP);
    expect(CONSOLE_CSP).not.toContain('unsafe');
    for (const url of ['/admin', '/admin/']) {
      const res = await ctx.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-store');
      expectSecurityHeaders(res.headers);
      // No inline script or style for the CSP to refuse: only files of this origin.
      expect(res.body).toMatch(/<script type="module" src="\/admin\/assets\/app-[A-Z0-9]+\.js"><\/script>/);
      expect(res.body).toMatch(/<link rel="stylesheet" href="\/admin\/assets\/style-[A-Z0-9]+\.css">/);
      expect(res.body).not.toMatch(/<script>|<style|style="/);
    }
  });

  it('serves the script and stylesheet it names, cached for good (content-hashed names)', async () => {
    const page = (await ctx.app.inject({ method: 'GET', url: '/admin' })).body;
    const [js] = /\/admin\/assets\/app-[A-Z0-9]+\.js/.exec(page)!;
    const [css] = /\/admin\/assets\/style-[A-Z0-9]+\.css/.exec(page)!;
    const script = await ctx.app.inject({ method: 'GET', url: js });
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expectSecurityHeaders(script.headers);
    // The SDK is bundled in: the console calls the API through it.
    expect(script.body).toContain('auth-api-console');
    expect(script.body).toContain('/admin/audit-events');
    const style = await ctx.app.inject({ method: 'GET', url: css });
    expect(style.statusCode).toBe(200);
    expect(style.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('serves nothing else: unknown files, other paths and traversal are 404', async () => {
    for (const url of ['/admin/assets/nope.js', '/admin/assets/index.html', '/admin/assets/..%2F..%2Fpackage.json', '/admin/assets/%2e%2e%2fapp.ts', '/admin/other']) {
      const res = await ctx.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error, url).toBe('not_found');
    }
  });

  it('a server started without the built console answers 404 with a clear message at /admin, and says so in its log', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-console-'));
    const lines: string[] = [];
    try {
      const app = await buildApp({
        config: ctx.config,
        database: ctx.database,
        consoleDir: empty,
        logger: { level: 'warn', stream: { write: (line: string) => void lines.push(line) } },
      });
      try {
        const res = await app.inject({ method: 'GET', url: '/admin' });
        expect(res.statusCode).toBe(404);
        expect(res.json()).toEqual({ error: 'not_found', message: expect.stringContaining('pnpm build') });
        expect(lines.some((l) => l.includes('the admin console is not built'))).toBe(true);
        // consoleDir: false: no console route at all.
      } finally {
        await app.close();
      }
      const none = await buildApp({ config: ctx.config, database: ctx.database, consoleDir: false, logger: false });
      try {
        const res = await none.inject({ method: 'GET', url: '/admin' });
        expect(res.statusCode).toBe(404);
        expect(res.json().message).toBe('No route GET /admin');
      } finally {
        await none.close();
      }
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
