// The admin console in a real browser (Debian's Chromium through playwright-core) against the
// built server on its embedded database: every screen, its accessibility (axe-core), its CSP,
// and the secret's one showing. Screenshots of each screen go to docs/console/ (README).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthClientError, createAuthClient, type AuthClient } from '../../../auth-client/src/index.js';
import { REPO_ROOT } from '../../test/process-helpers.js';
import { launchBrowser, type RunningServer, seriousA11yViolations, startServer } from './harness.js';

const ADMIN = { email: 'console-admin@example.com', password: 'a long console test password' };
const SHOTS = join(REPO_ROOT, 'docs', 'console');
const EXPECTED_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let admin: AuthClient;
let rotationSupported: boolean;
/** API calls the console has sent and not yet had answered (the page's own requests). */
let apiCallsInFlight = 0;
const cspReports: string[] = [];
const pageErrors: string[] = [];
const secrets: string[] = [];

async function shot(name: string) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe on the current screen: no serious or critical violation. */
async function expectAccessible(screen: string) {
  const violations = await seriousA11yViolations(page);
  expect(violations, `${screen}: ${JSON.stringify(violations, null, 1)}`).toEqual([]);
}

const heading = () => page.locator('h1');

async function token(clientId: string, clientSecret: string) {
  const res = await fetch(`${server.url}/api/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function signIn() {
  await page.goto(`${server.url}/admin`);
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect.poll(() => heading().textContent()).toBe('Credentials');
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer({ ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, BCRYPT_COST: '4', JWT_ACCESS_SECRET: 'console-e2e-secret-0123456789-abcdefghijklmnop' });
  admin = createAuthClient({ apiBaseUrl: `${server.url}/api/v1`, appCode: 'console-e2e' });
  await admin.auth.login(ADMIN);
  // A catalog to pick scopes from; a credential whose scope the catalog later drops (an orphaned scope).
  await admin.permissions.register({
    service: 'gsku',
    permissions: [
      { code: 'gsku:publish', name: 'Publish SKUs', description: 'Publish to the catalog' },
      { code: 'gsku:read', name: 'Read SKUs' },
      { code: 'gsku:legacy', name: 'Legacy export' },
    ],
  });
  await admin.services.create({ client_id: 'legacy-exporter', name: 'Legacy exporter', scopes: ['gsku:legacy', 'gsku:read'] });
  await admin.permissions.register({ service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish SKUs', description: 'Publish to the catalog' }, { code: 'gsku:read', name: 'Read SKUs' }] });
  // Enough credentials for two pages of the list (20 a page).
  for (let i = 1; i <= 21; i++) await admin.services.create({ client_id: `batch-${String(i).padStart(2, '0')}`, name: `Batch job ${i}`, scopes: i % 2 ? ['gsku:read'] : [] });
  // Does this server have the secrets API (secret rotation)? The console decides the same way.
  const probe = (await admin.services.list({ client_id_prefix: 'legacy' }))[0]!;
  rotationSupported = await admin.services.secrets(probe.id).then(
    () => true,
    (err: unknown) => {
      if (err instanceof AuthClientError && err.code === 'not_found') return false;
      throw err;
    },
  );

  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  // Any CSP violation a page reports, from its first script on, in every document of the run.
  await context.exposeFunction('__reportCsp', (report: string) => void cspReports.push(report));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __reportCsp(r: string): void }).__reportCsp(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  // A step that cannot find its element fails in 10 s, naming the locator, well before the test's timeout.
  context.setDefaultTimeout(10_000);
  page = await context.newPage();
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspReports.push(message.text());
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  const isApiCall = (r: Request) => new URL(r.url()).pathname.startsWith('/api/');
  page.on('request', (r) => isApiCall(r) && apiCallsInFlight++);
  page.on('requestfinished', (r) => isApiCall(r) && apiCallsInFlight--);
  page.on('requestfailed', (r) => isApiCall(r) && apiCallsInFlight--);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('the admin console in Chromium', () => {
  it('is served with the strict CSP and the anti-framing headers', async () => {
    const response = await page.goto(`${server.url}/admin`);
    expect(response!.status()).toBe(200);
    const headers = response!.headers();
    expect(headers['content-security-policy']).toBe(EXPECTED_CSP);
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');
    await expect.poll(() => heading().textContent()).toBe('Sign in to the auth-api console');
    await expectAccessible('sign-in');
    await shot('sign-in');
  });

  it('a wrong password is a sentence, and the form stays usable', async () => {
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill('not the password at all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.textContent()).toBe('The email or password is wrong.');
    // The problem takes the focus, so a screen reader announces it and Tab continues from there.
    // (Focus moves in an effect after the render that shows the text: poll it too.)
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('role'))).toBe('alert');
    await expectAccessible('sign-in with an error');
    await shot('sign-in-error');
  });

  it('signs in with the keyboard alone: focus starts in Email, Tab, Enter', async () => {
    await page.goto(`${server.url}/admin`);
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('email');
    await page.keyboard.type(ADMIN.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(ADMIN.password);
    await page.keyboard.press('Enter');
    await expect.poll(() => heading().textContent()).toBe('Credentials');
    // The new screen's heading has the focus.
    // (moved there by an effect after the render: polled, like every focus check here)
    await expect.poll(() => page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
  });

  it('lists credentials with status, scopes, last used, created by and created at; pages; filters', async () => {
    const table = page.getByRole('table');
    await expect.poll(() => table.locator('tbody tr').count()).toBe(20);
    expect(await table.locator('thead th').allTextContents()).toEqual(['Client ID', 'Name', 'Status', 'Scopes', 'Last used', 'Created by', 'Created']);
    const first = table.locator('tbody tr').first();
    expect(await first.locator('td').allTextContents()).toEqual(['batch-21', 'Batch job 21', 'active', 'gsku:read', 'never', 'you', expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/)]);
    await expectAccessible('credentials');
    await shot('credentials');

    await page.getByRole('button', { name: 'Next page' }).click();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(2);
    expect(await table.locator('tbody td:first-child').allTextContents()).toEqual(['batch-01', 'legacy-exporter']);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(20);

    await page.getByLabel('Client ID starts with').fill('batch-1');
    await page.getByLabel('Holds scope').fill('gsku:read');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    // batch-10 … batch-19 with an odd number hold gsku:read.
    await expect.poll(() => table.locator('tbody td:first-child').allTextContents()).toEqual(['batch-19', 'batch-17', 'batch-15', 'batch-13', 'batch-11']);

    // A malformed filter: the API's answer, as a sentence under the field it concerns.
    await page.getByLabel('Holds scope').fill('Not A Scope');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => page.locator('#scope-error').textContent()).toBe('Scope filter must be a lower-case "service:permission" string, e.g. "gsku:publish".');
    expect(await page.getByLabel('Holds scope').getAttribute('aria-invalid')).toBe('true');

    await page.getByLabel('Holds scope').fill('');
    await page.getByLabel('Client ID starts with').fill('');
    await page.getByLabel('Status').selectOption('disabled');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toBe('No credential matches.');
  });

  it('create: API errors are sentences on their fields', async () => {
    await page.getByRole('link', { name: 'New credential' }).first().click();
    await expect.poll(() => heading().textContent()).toBe('New credential');
    await page.getByLabel('Client ID').fill('x');
    await page.getByLabel('Other scopes').fill('gsku:nope');
    await page.getByRole('button', { name: 'Create credential' }).click();
    await expect.poll(() => page.locator('#client_id-error').textContent()).toBe('Client ID must be at least 3 characters.');
    expect(await page.locator('#name-error').textContent()).toBe('Name is required.');
    expect(await page.getByLabel('Client ID').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('alert').textContent()).toContain('Client ID must be at least 3 characters.');

    await page.getByLabel('Client ID').fill('fresh-svc');
    await page.getByLabel('Name', { exact: true }).fill('Fresh');
    await page.getByRole('button', { name: 'Create credential' }).click();
    await expect.poll(() => page.locator('#scopes-error').textContent()).toBe('Scopes: "gsku:nope" is not in the catalogs: the namespace "gsku" has a catalog, which does not define it.');
    expect(await page.locator('#client_id-error').count()).toBe(0);
    await page.getByLabel('Other scopes').fill('');
    await page.getByLabel('Client ID').fill('legacy-exporter');
    await page.getByRole('button', { name: 'Create credential' }).click();
    await expect.poll(() => page.locator('#client_id-error').textContent()).toBe(
      'Client ID "legacy-exporter" is taken: client IDs are never reused, even after a credential is revoked. Choose another.',
    );
    await expectAccessible('create with errors');
    await shot('create-errors');
  });

  it('create: scopes from the catalog and typed, the secret shown once, copyable, working, then gone', async () => {
    await page.goto(`${server.url}/admin#/credentials/new`);
    await expect.poll(() => heading().textContent()).toBe('New credential');
    await page.getByLabel('Client ID').fill('billing-svc');
    await page.getByLabel('Name', { exact: true }).fill('Billing backend');
    await page.getByLabel('Description (optional)').fill('Publishes invoices as SKUs');
    await page.getByLabel(/gsku:publish/).check();
    await page.getByLabel('Other scopes').fill('reports:read');
    await page.getByLabel('Allowed audiences (optional)').fill('catalog-api');
    await expectAccessible('create');
    await shot('create');
    await page.getByRole('button', { name: 'Create credential' }).click();

    await expect.poll(() => heading().textContent()).toBe('Credential billing-svc created');
    const secret = await page.getByLabel('Client secret of billing-svc').inputValue();
    secrets.push(secret);
    expect(secret).toMatch(/^m2msk_/);
    expect(await page.locator('.warning').textContent()).toContain('It will not be shown again');

    await page.getByRole('button', { name: 'Copy secret' }).click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await page.getByRole('button', { name: 'Copy as environment variables' }).click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(`AUTH_URL=${server.url}\nCLIENT_ID=billing-svc\nCLIENT_SECRET=${secret}\n`);
    expect(await page.getByRole('status').textContent()).toBe('The environment variables are copied to the clipboard.');
    await expectAccessible('secret shown once');
    await shot('secret-once');

    // The secret works at the token endpoint, with the scopes picked and typed.
    const granted = await token('billing-svc', secret);
    expect(granted.status).toBe(200);
    expect(String(granted.body.scope).split(' ').sort()).toEqual(['gsku:publish', 'reports:read']);

    // Leaving the page drops it: not in the DOM, and Back does not bring it back.
    await page.getByRole('link', { name: 'Credentials', exact: true }).click();
    await expect.poll(() => heading().textContent()).toBe('Credentials');
    expect(await page.content()).not.toContain(secret);
    await page.goBack();
    await expect.poll(() => heading().textContent()).toBe('New credential');
    expect(await page.content()).not.toContain(secret);
    expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + document.cookie + location.href)).not.toContain(secret);
  });

  it('detail: the record and its audit trail; disable and enable take effect at the token endpoint', async () => {
    await page.goto(`${server.url}/admin#/credentials`);
    await page.getByRole('link', { name: 'billing-svc' }).click();
    await expect.poll(() => heading().textContent()).toBe('billing-svc active');
    const trail = page.getByRole('table', { name: /What happened to billing-svc/ });
    await expect.poll(() => trail.locator('tbody tr').count()).toBe(1);
    expect(await trail.locator('tbody td').nth(1).textContent()).toBe(ADMIN.email);
    expect(await trail.locator('tbody td').nth(2).textContent()).toBe('m2m_client.create');
    expect(await page.locator('dl.record').textContent()).toContain(`by ${ADMIN.email}`);

    await page.getByRole('button', { name: 'Disable' }).click();
    await expect.poll(() => heading().textContent()).toBe('billing-svc disabled');
    expect(await page.locator('.done').textContent()).toContain('billing-svc is disabled');
    expect((await token('billing-svc', secrets[0]!)).status).toBe(401);
    await expect.poll(() => trail.locator('tbody tr').count()).toBe(2);
    expect(await trail.locator('tbody tr').first().locator('td').nth(3).textContent()).toBe('changed status');

    await page.getByRole('button', { name: 'Enable' }).click();
    await expect.poll(() => heading().textContent()).toBe('billing-svc active');
    expect((await token('billing-svc', secrets[0]!)).status).toBe(200);
    await expectAccessible('credential');
    await shot('credential');
  });

  it('rotate: the new secret shown once, the old one expiring as chosen (or no rotation section on a server without the secrets API)', async () => {
    if (!rotationSupported) {
      expect(await page.getByRole('heading', { name: 'Secrets' }).count()).toBe(0);
      expect(await page.locator('main').textContent()).toContain('This server has no secret rotation');
      return;
    }
    await page.getByLabel('The current secret, once the new one exists').selectOption('3600');
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const field = page.getByLabel('Client secret of billing-svc');
    await expect.poll(() => field.count()).toBe(1);
    const rotated = await field.inputValue();
    expect(rotated).toMatch(/^m2msk_/);
    expect(rotated).not.toBe(secrets[0]);
    secrets.push(rotated);
    // Both work for now: the old one expires in an hour.
    expect((await token('billing-svc', rotated)).status).toBe(200);
    expect((await token('billing-svc', secrets[0]!)).status).toBe(200);
    const listed = page.getByRole('table', { name: /Live secrets/ });
    await expect.poll(() => listed.locator('tbody tr').count()).toBe(2);
    expect(await listed.locator('tbody tr').nth(1).locator('td').nth(3).textContent()).toMatch(/UTC$/);
    await expectAccessible('rotate');
    await shot('rotate');
    await page.getByRole('link', { name: 'Back to the credentials' }).click();
    await expect.poll(() => heading().textContent()).toBe('Credentials');
    expect(await page.content()).not.toContain(rotated);
    await page.goBack();
    await expect.poll(() => heading().textContent()).toBe('billing-svc active');
    expect(await page.content()).not.toContain(rotated);
  });

  it('revoke asks for the client_id typed out, then the credential obtains no more tokens', async () => {
    await page.getByRole('button', { name: 'Revoke…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke billing-svc?' });
    await expect.poll(() => dialog.isVisible()).toBe(true);
    const confirm = dialog.getByRole('button', { name: 'Revoke billing-svc' });
    expect(await confirm.isDisabled()).toBe(true);
    // Escape cancels; nothing happened.
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Revoke…' }).click();
    await dialog.getByLabel(/Type billing-svc to confirm/).fill('billing');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel(/Type billing-svc to confirm/).fill('billing-svc');
    expect(await confirm.isDisabled()).toBe(false);
    await expectAccessible('revoke confirmation');
    await shot('revoke-confirm');
    await confirm.click();
    await expect.poll(() => heading().textContent()).toBe('billing-svc revoked');
    for (const secret of secrets) expect((await token('billing-svc', secret)).status).toBe(401);
    expect(await page.getByRole('button', { name: 'Disable' }).count()).toBe(0);
    const trail = page.getByRole('table', { name: /What happened to billing-svc/ });
    expect(await trail.locator('tbody tr').first().locator('td').nth(2).textContent()).toBe('m2m_client.revoke');
  });

  it('catalogs: each service, its permissions, who holds them, orphaned scopes', async () => {
    await page.getByRole('link', { name: 'Catalogs' }).click();
    await expect.poll(() => heading().textContent()).toBe('Permission catalogs');
    const gsku = page.getByRole('table', { name: 'Permissions of gsku' });
    await expect.poll(() => gsku.locator('tbody tr').count()).toBe(2);
    const readRow = gsku.locator('tbody tr', { hasText: 'gsku:read' });
    expect(await readRow.getByRole('link').allTextContents()).toEqual(['batch-21', 'batch-19', 'batch-17', 'batch-15', 'batch-13', 'batch-11', 'batch-09', 'batch-07', 'batch-05', 'batch-03', 'batch-01', 'legacy-exporter']);
    // The seeded batch credentials hold no uncatalogued scope; a typed one shows under "Scopes without a catalog".
    await admin.services.create({ client_id: 'reports-job', name: 'Reports', scopes: ['reports:read'] });
    await page.reload();
    await signIn();
    await page.getByRole('link', { name: 'Catalogs' }).click();
    await expect.poll(() => page.getByRole('region', { name: 'Scopes without a catalog' }).textContent()).toContain('reports:read: reports-job');
    const orphaned = page.getByRole('region', { name: 'Orphaned scopes' });
    expect(await orphaned.textContent()).toContain('legacy-exporter: gsku:legacy');
    await expectAccessible('catalogs');
    await shot('catalogs');
  });

  it('audit log: every admin action, filtered by action', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await expect.poll(() => heading().textContent()).toBe('Audit log');
    const table = page.getByRole('table');
    const total = (await admin.audit.list({ limit: 500 })).events.length;
    expect(total).toBeGreaterThan(25);
    await expect.poll(() => table.locator('tbody tr').count()).toBe(25);
    await expectAccessible('audit');
    await shot('audit');
    // Pages of 25, newest first.
    await page.getByRole('button', { name: 'Older' }).click();
    await expect.poll(() => table.locator('caption').textContent()).toBe('Audit log, newest first (page 2)');
    await expect.poll(() => table.locator('tbody tr').count()).toBe(Math.min(25, total - 25));
    await page.getByRole('button', { name: 'Newer' }).click();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(25);
    await page.getByLabel('Action').fill('m2m_client.revoke');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(1);
    expect(await table.locator('tbody td').nth(3).textContent()).toBe('billing-svc');
    await page.getByLabel('Action').fill('login.failure');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => table.locator('tbody td:nth-child(3)').allTextContents()).toEqual(['login.failure']);
  });

  it('readable at 360 px: no sideways scrolling of the page', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [hash, name] of [
      ['#/credentials', 'mobile-credentials'],
      ['#/credentials/new', 'mobile-create'],
    ] as const) {
      await page.evaluate((h) => (location.hash = h), hash);
      await expect.poll(() => page.locator('h1').isVisible()).toBe(true);
      await page.waitForTimeout(200);
      expect(await page.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(360);
      await expectAccessible(name);
      await shot(name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('a session that ends elsewhere: the next action says so and returns to sign-in', async () => {
    await page.getByRole('link', { name: 'Credentials', exact: true }).click();
    await expect.poll(() => heading().textContent()).toBe('Credentials');
    // Every read of the screen (the listing, the catalog for the scope filter) is answered before
    // the session ends: one still in flight would end it first and take the nav away. The reads
    // start in effects after the heading renders, so first wait for the listing itself (both were
    // sent by then), then for nothing in flight.
    await page.getByRole('region', { name: 'Credentials list' }).waitFor();
    await expect.poll(() => apiCallsInFlight).toBe(0);
    // The same admin signs out everywhere from another client: the browser's session ends too.
    const other = createAuthClient({ apiBaseUrl: `${server.url}/api/v1`, appCode: 'console-e2e' });
    await other.auth.login(ADMIN);
    expect((await other.auth.revokeAllSessions()).revoked_count).toBeGreaterThanOrEqual(2);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await expect.poll(() => heading().textContent()).toBe('Sign in to the auth-api console');
    expect(await page.getByRole('status').textContent()).toBe('Your session has ended, so you were signed out. Sign in again to continue.');
    await expectAccessible('session ended');
    await shot('session-ended');
  });

  it('a session that expires (USER_TOKEN_TTL, 900 s here) ends in the console at that moment, with the same message', async () => {
    // A page of its own with a controlled clock: 15 minutes pass in an instant.
    const timed = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      await timed.clock.install();
      const tab = await timed.newPage();
      await tab.goto(`${server.url}/admin`);
      await tab.getByLabel('Email').fill(ADMIN.email);
      await tab.getByLabel('Password').fill(ADMIN.password);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => tab.locator('h1').textContent()).toBe('Credentials');
      await tab.clock.fastForward(899_000);
      expect(await tab.locator('h1').textContent()).toBe('Credentials');
      await tab.clock.fastForward(2_000);
      await expect.poll(() => tab.locator('h1').textContent()).toBe('Sign in to the auth-api console');
      expect(await tab.getByRole('status').textContent()).toBe('Your session has ended, so you were signed out. Sign in again to continue.');
    } finally {
      await timed.close();
    }
  });

  it('the token is in memory only: a reload asks to sign in again; sign out ends the session', async () => {
    await signIn();
    await page.reload();
    await expect.poll(() => heading().textContent()).toBe('Sign in to the auth-api console');
    await signIn();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => heading().textContent()).toBe('Sign in to the auth-api console');
    expect(await page.getByRole('status').textContent()).toBe('You are signed out.');
  });

  it('no CSP violation and no script error was reported on any screen; an inline script would be', async () => {
    expect(cspReports).toEqual([]);
    expect(pageErrors).toEqual([]);
    // The detector works: an injected inline script and style are refused and reported.
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__inlineRan = true';
      document.body.append(script);
      const style = document.createElement('style');
      style.textContent = 'body { color: red }';
      document.head.append(style);
    });
    await expect.poll(() => cspReports.length).toBeGreaterThanOrEqual(2);
    expect(cspReports.join('\n')).toMatch(/script-src/);
    expect(cspReports.join('\n')).toMatch(/style-src/);
    expect(await page.evaluate(() => 'inlineRan' in window || '__inlineRan' in window)).toBe(false);
  });
});
