import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { generateSessionToken, hashSessionToken } from '../src/lib/secrets.js';
import { TEST_DATABASE_URL, TEST_SECRET } from './helpers.js';
import { createEmptyPostgresDatabase, type Finished, processEnv, runCli } from './process-helpers.js';

// The built CLI as an operator runs it, on one database for the whole file:
// an embedded PGlite folder (first open ~6 s, then ~1 s each), or a fresh
// PostgreSQL database when TEST_DATABASE_URL is set.
const dataDir = join(mkdtempSync(join(tmpdir(), 'auth-api-cli-')), 'data');
let databaseUrl: string | undefined;
let dropDatabase: (() => Promise<void>) | undefined;

beforeAll(async () => {
  if (TEST_DATABASE_URL) ({ url: databaseUrl, drop: dropDatabase } = await createEmptyPostgresDatabase(TEST_DATABASE_URL));
});
afterAll(async () => {
  await dropDatabase?.();
  rmSync(dataDir, { recursive: true, force: true });
});

const env = () =>
  processEnv({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    JWT_ACCESS_SECRET: TEST_SECRET,
    BCRYPT_COST: '4',
  });
const cli = (args: string[], input?: string) => runCli(args, env(), input);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const SECRET = /^client_secret: (m2msk_[A-Za-z0-9_-]{43})$/m;
const ADMIN_PASSWORD = 'a long admin passphrase';
const NEW_OPS_PASSWORD = 'a new passphrase for ops';

function expectFailure(result: Finished, code: number, firstLine: RegExp) {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
  expect(result.stderr.split('\n')[0]).toMatch(firstLine);
  expect(result.stderr).not.toMatch(/^\s+at /m); // no stack trace
}

describe('auth-api CLI', () => {
  it('prints help for every command and exits 0', async () => {
    const helps = [
      [[], /^Usage: auth-api <command>/m],
      [['--help'], /clients revoke <id\|client_id>/],
      [['serve', '--help'], /^Usage: auth-api serve$/m],
      [['migrate', '-h'], /^Usage: auth-api migrate$/m],
      [['admin', 'create', '--help'], /^Usage: auth-api admin create \[options\][\s\S]*--password-stdin/m],
      [['admin', '--help'], /^Usage: auth-api admin <command>[\s\S]*admin list[\s\S]*admin disable <email>[\s\S]*admin enable <email>[\s\S]*admin reset-password <email>[\s\S]*admin revoke-sessions <email>/m],
      [['admin', 'list', '--help'], /^Usage: auth-api admin list \[options\][\s\S]*--json/m],
      [['admin', 'disable', '--help'], /^Usage: auth-api admin disable <email>$/m],
      [['admin', 'reset-password', '--help'], /^Usage: auth-api admin reset-password <email> \[options\][\s\S]*--password-stdin/m],
      [['clients', '--help'], /^Usage: auth-api clients <command>[\s\S]*clients list/m],
      [['clients', 'create', '--help'], /^Usage: auth-api clients create \[options\][\s\S]*--scope[\s\S]*--json/m],
      [['clients', 'list', '--help'], /^Usage: auth-api clients list \[options\][\s\S]*--json/m],
      [['clients', 'revoke', '--help'], /^Usage: auth-api clients revoke <id\|client_id>$/m],
      [['clients', 'show', '--help'], /^Usage: auth-api clients show <id\|client_id> \[options\][\s\S]*--json/m],
      [['clients', 'update', '--help'], /^Usage: auth-api clients update <id\|client_id> \[options\][\s\S]*--scope[\s\S]*--audience/m],
      [['clients', 'disable', '--help'], /^Usage: auth-api clients disable <id\|client_id> \[options\][\s\S]*clients enable/m],
      [['clients', 'enable', '--help'], /^Usage: auth-api clients enable <id\|client_id> \[options\]$/m],
    ] as const;
    const results = await Promise.all(helps.map(([args]) => cli([...args])));
    results.forEach((result, i) => {
      expect(result, helps[i]![0].join(' ')).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toMatch(helps[i]![1]);
    });
  });

  it('rejects bad usage and bad input with exit 2 and the problem named, before opening the database', async () => {
    const cases: [string[], RegExp, string?][] = [
      [['frobnicate'], /^auth-api: unknown command "frobnicate"$/],
      [['clients'], /^auth-api: clients: a command is required$/],
      [['clients', 'create', '--name', 'x', '--nope'], /^auth-api: clients create: Unknown option '--nope'/],
      [['clients', 'create', '--name', 'Billing'], /^auth-api: clients create: --client-id: is required$/],
      [['clients', 'create', '--client-id', 'Bad Id!', '--name', 'Billing'], /^auth-api: clients create: --client-id: must be lower-case letters/],
      [['clients', 'create', '--client-id', 'ok-id', '--name', 'x', '--scope', 'publish'], /^auth-api: clients create: --scope: must be a lower-case "service:permission"/],
      [['clients', 'revoke'], /^auth-api: clients revoke: expected <id\|client_id>$/],
      [['clients', 'revoke', 'not an id'], /^auth-api: clients revoke: <id\|client_id>: must be lower-case letters/],
      [['clients', 'show'], /^auth-api: clients show: expected <id\|client_id>$/],
      [['clients', 'update', 'billing-svc'], /^auth-api: clients update: options: at least one field to change is required$/],
      [['clients', 'update', 'billing-svc', '--scope', 'Publish'], /^auth-api: clients update: --scope: must be a lower-case "service:permission"/],
      [['clients', 'update', 'billing-svc', '--status', 'disabled'], /^auth-api: clients update: Unknown option '--status'/],
      [['clients', 'disable', 'Bad Id!'], /^auth-api: clients disable: <id\|client_id>: must be lower-case letters/],
      [['clients', 'list', '--status', 'gone'], /^auth-api: clients list: --status: must be "active" or "disabled"$/],
      [['admin', 'create', '--email', 'not-an-email', '--password-stdin'], /^auth-api: admin create: --email: must be an email address$/, ADMIN_PASSWORD],
      [['admin', 'create', '--email', 'ops@example.com', '--password-stdin'], /^auth-api: admin create: --password-stdin: must be at least 12 characters$/, 'short\n'],
      [['admin', 'disable'], /^auth-api: admin disable: expected <email>$/],
      [['admin', 'enable', 'not-an-email'], /^auth-api: admin enable: <email>: must be an email address$/],
      [['admin', 'revoke-sessions', 'a@b.co', 'extra'], /^auth-api: admin revoke-sessions: expected <email>$/],
      [['admin', 'reset-password', 'ops@example.com', '--password-stdin'], /^auth-api: admin reset-password: --password-stdin: must be at least 12 characters$/, 'short\n'],
      [['admin', 'list', 'extra'], /^auth-api: admin list: unexpected argument "extra"$/],
    ];
    const results = await Promise.all(cases.map(([args, , input]) => cli(args, input)));
    results.forEach((result, i) => expectFailure(result, 2, cases[i]![1]));
    expect(existsSync(dataDir)).toBe(false);
  });

  it('migrate applies the schema to the new database', async () => {
    const migrated = await cli(['migrate']);
    expect(migrated).toMatchObject({ code: 0, stderr: '' });
    // Every migration, in order (other branches append theirs).
    expect(migrated.stdout).toMatch(/^migrations applied \((pglite|postgres)\): 2026-11-25-001-initial(, [\w-]+)*\n$/);
    expect(migrated.stdout).toContain(', 2026-11-26-011-admin-sessions');
    expect(migrated.stdout).toContain('2026-11-26-012-signing-keys');
    expect(migrated.stdout).toContain(', 2026-11-26-014-permissions');
    expect(migrated.stdout).toContain(', 2026-11-26-013-auth-events');
  });

  it('admin create: from stdin, or generated and shown once; a second time is a conflict (exit 1)', async () => {
    const created = await cli(['admin', 'create', '--email', 'Ops@Example.com', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(new RegExp(`^created the system_admin ops@example.com \\(id ${UUID.source}\\)\\n$`));

    const generated = await cli(['admin', 'create', '--email', 'second@example.com']);
    expect(generated.code).toBe(0);
    expect(generated.stdout).toMatch(/^password: [A-Za-z0-9_-]{22}$/m);
    expect(generated.stderr).toMatch(/shown only this once/);

    expectFailure(await cli(['admin', 'create', '--email', 'ops@example.com', '--password-stdin'], ADMIN_PASSWORD), 1, /^auth-api: admin create: conflict: /);
  });

  /** Opens the CLI's database in this process (the embedded one allows one process at a time). */
  async function withDatabase<T>(fn: (db: DatabaseHandle['db']) => Promise<T>): Promise<T> {
    const database = await connectDatabase(databaseUrl ? { databaseUrl } : { dataDir });
    try {
      return await fn(database.db);
    } finally {
      await database.close();
    }
  }

  /** Sessions for a user, as a sign-in writes them; returns their tokens. */
  async function openSessions(email: string, count: number): Promise<string[]> {
    return withDatabase(async (db) => {
      const { id } = await db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirstOrThrow();
      const tokens = Array.from({ length: count }, () => generateSessionToken());
      const now = Date.now();
      for (const token of tokens) {
        await db
          .insertInto('admin_sessions')
          .values({ id: randomUUID(), token_hash: hashSessionToken(token), user_id: id, created_at: new Date(now), expires_at: new Date(now + 900_000), last_seen_at: new Date(now), ip: '127.0.0.1', user_agent: null })
          .execute();
      }
      return tokens;
    });
  }

  const liveSessions = (email: string) =>
    withDatabase(async (db) =>
      (
        await db
          .selectFrom('admin_sessions')
          .innerJoin('users', 'users.id', 'admin_sessions.user_id')
          .select('admin_sessions.id')
          .where('users.email', '=', email)
          .where('admin_sessions.revoked_at', 'is', null)
          .execute()
      ).length,
    );

  // Several CLI processes in a row: allow for a loaded machine.
  it('admin list: a table, or --json; sessions counted; never a hash', { timeout: 180_000 }, async () => {
    await openSessions('ops@example.com', 2);
    const table = await cli(['admin', 'list']);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+EMAIL\s+ROLES\s+STATUS\s+SESSIONS\s+LAST SEEN\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(1, 5))).toEqual([
      ['ops@example.com', 'system_admin', 'active', '2'],
      ['second@example.com', 'system_admin', 'active', '0'],
    ]);

    const json = await cli(['admin', 'list', '--json']);
    expect(json.code).toBe(0);
    const { users } = JSON.parse(json.stdout);
    expect(users[0]).toEqual({
      id: expect.stringMatching(UUID),
      email: 'ops@example.com',
      roles: ['system_admin'],
      status: 'active',
      disabled_at: null,
      created_at: expect.any(String),
      active_sessions: 2,
      last_seen_at: expect.any(String),
    });
    for (const out of [table.stdout, json.stdout]) expect(out).not.toContain('$2');
  });

  it('admin revoke-sessions ends every session; unknown email is exit 1', async () => {
    const revoked = await cli(['admin', 'revoke-sessions', 'OPS@example.com']);
    expect(revoked).toMatchObject({ code: 0, stderr: '' });
    expect(revoked.stdout).toMatch(new RegExp(`^ops@example.com \\(id ${UUID.source}\\): 2 sessions ended\\n$`));
    expect(await liveSessions('ops@example.com')).toBe(0);
    expectFailure(await cli(['admin', 'revoke-sessions', 'nobody@example.com']), 1, /^auth-api: admin revoke-sessions: not_found: /);
  });

  it('admin disable ends every session at once; again is not an error', async () => {
    await openSessions('second@example.com', 1);
    const disabled = await cli(['admin', 'disable', 'second@example.com']);
    expect(disabled).toMatchObject({ code: 0, stderr: '' });
    expect(disabled.stdout).toMatch(/^disabled second@example.com \(id .+\); 1 session ended\n$/);
    expect(await liveSessions('second@example.com')).toBe(0);
    const again = await cli(['admin', 'disable', 'second@example.com']);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringMatching(/was already disabled; 0 sessions ended\n$/) });
  });

  // Several CLI processes in a row: allow for a loaded machine.
  it('admin disable warns when no enabled system_admin is left; admin enable undoes it', { timeout: 180_000 }, async () => {
    const lastOne = await cli(['admin', 'disable', 'ops@example.com']);
    expect(lastOne.code).toBe(0);
    expect(lastOne.stderr).toMatch(/^warning: no enabled system_admin is left/);

    expect(await withDatabase((db) => db.selectFrom('users').select('disabled_at').where('disabled_at', 'is not', null).execute())).toHaveLength(2);

    expect(await cli(['admin', 'enable', 'ops@example.com'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^enabled ops@example.com \(id .+\)\n$/), stderr: '' });
    expect(await cli(['admin', 'enable', 'ops@example.com'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/was not disabled\n$/) });
    expect(await cli(['admin', 'enable', 'second@example.com'])).toMatchObject({ code: 0 });
  });

  // Several CLI processes in a row: allow for a loaded machine.
  it('admin reset-password: generated and shown once, or from stdin; ends sessions', { timeout: 180_000 }, async () => {
    await openSessions('second@example.com', 1);
    const generated = await cli(['admin', 'reset-password', 'second@example.com']);
    expect(generated.code).toBe(0);
    expect(generated.stdout).toMatch(/^reset the password of second@example.com \(id .+\); 1 session ended$/m);
    const password = generated.stdout.match(/^password: ([A-Za-z0-9_-]{22})$/m)![1]!;
    expect(generated.stderr).toMatch(/shown only this once/);
    expect(await liveSessions('second@example.com')).toBe(0);

    const fromStdin = await cli(['admin', 'reset-password', 'ops@example.com', '--password-stdin'], `${NEW_OPS_PASSWORD}\n`);
    expect(fromStdin).toMatchObject({ code: 0, stderr: '' });
    expect(fromStdin.stdout).not.toContain(NEW_OPS_PASSWORD);

    await withDatabase(async (db) => {
      const hasher = createBcryptHasher(4);
      const rows = await db.selectFrom('users').select(['email', 'password_hash']).orderBy('created_at').execute();
      expect(await hasher.verify(NEW_OPS_PASSWORD, rows[0]!.password_hash)).toBe(true);
      expect(await hasher.verify(password, rows[1]!.password_hash)).toBe(true);
    });
    expectFailure(await cli(['admin', 'reset-password', 'nobody@example.com', '--password-stdin'], NEW_OPS_PASSWORD), 1, /^auth-api: admin reset-password: not_found: /);
  });

  let billing: { id: string; secret: string };
  let reports: { id: string; secret: string };

  it('clients create prints the secret once with a warning; --json for scripts; a taken client_id is exit 1', async () => {
    const human = await cli(['clients', 'create', '--client-id', 'billing-svc', '--name', 'Billing backend', '--scope', 'gsku:publish', '--scope', 'gsku:read']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^created the service credential billing-svc \\(id ${UUID.source}\\)$`, 'm'));
    expect(human.stdout).toMatch(/^scopes: gsku:publish gsku:read$/m);
    expect(human.stderr).toBe('warning: the client secret will not be shown again: store it in a secret manager now.\n');
    billing = { id: human.stdout.match(UUID)![0], secret: human.stdout.match(SECRET)![1]! };

    const json = await cli(['clients', 'create', '--client-id', 'reports', '--name', 'Reports', '--description', 'nightly jobs', '--scope', 'gsku:read', '--scope', 'gsku:read', '--json']);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout);
    expect(body).toEqual({
      client: expect.objectContaining({ client_id: 'reports', name: 'Reports', description: 'nightly jobs', scopes: ['gsku:read'], status: 'active', created_by: null, revoked_at: null }),
      client_secret: expect.stringMatching(/^m2msk_/),
    });
    expect(json.stderr).toMatch(/will not be shown again/);
    reports = { id: body.client.id, secret: body.client_secret };

    expectFailure(await cli(['clients', 'create', '--client-id', 'billing-svc', '--name', 'Again']), 1, /^auth-api: clients create: conflict: /);
  });

  it('clients list: a table, or --json with the same records as the HTTP API; never a secret', async () => {
    const table = await cli(['clients', 'list']);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+CLIENT_ID\s+NAME\s+STATUS\s+SCOPES\s+LAST USED\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(0, 5))).toEqual([
      [reports.id, 'reports', 'Reports', 'active', 'gsku:read'],
      [billing.id, 'billing-svc', 'Billing backend', 'active', 'gsku:publish gsku:read'],
    ]);

    const json = await cli(['clients', 'list', '--json']);
    expect(json.code).toBe(0);
    const { clients } = JSON.parse(json.stdout);
    expect(clients.map((c: { id: string }) => c.id)).toEqual([reports.id, billing.id]);
    expect(Object.keys(clients[0]).sort()).toEqual(
      ['allowed_audiences', 'client_id', 'created_at', 'created_by', 'description', 'id', 'last_used_at', 'name', 'revoked_at', 'scopes', 'status', 'updated_at', 'orphaned_scopes'].sort(),
    );
    for (const out of [table.stdout, json.stdout]) {
      expect(out).not.toContain(billing.secret);
      expect(out).not.toContain('$2');
    }
  });

  it('clients show by client_id or id: every field, never a secret; --json is the HTTP record; unknown is exit 1', async () => {
    const human = await cli(['clients', 'show', 'billing-svc']);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toMatch(new RegExp(`^id:\\s+${billing.id}$`, 'm'));
    expect(human.stdout).toMatch(/^client_id:\s+billing-svc$/m);
    expect(human.stdout).toMatch(/^status:\s+active$/m);
    expect(human.stdout).toMatch(/^scopes:\s+gsku:publish gsku:read$/m);
    expect(human.stdout).not.toContain(billing.secret);

    const json = await cli(['clients', 'show', reports.id, '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(json.stdout)).toMatchObject({ id: reports.id, client_id: 'reports', description: 'nightly jobs', scopes: ['gsku:read'] });
    expect(json.stdout).not.toContain('$2');

    expectFailure(await cli(['clients', 'show', 'no-such-client']), 1, /^auth-api: clients show: not_found: /);
  });

  it('clients update changes only what is given (lists replaced); clients disable', async () => {
    const updated = await cli(['clients', 'update', 'billing-svc', '--name', 'Billing', '--scope', 'gsku:publish', '--audience', 'catalog-api', '--json']);
    expect(updated).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(updated.stdout)).toMatchObject({
      id: billing.id,
      name: 'Billing',
      description: null,
      scopes: ['gsku:publish'],
      allowed_audiences: ['catalog-api'],
      status: 'active',
    });

    const disabled = await cli(['clients', 'disable', billing.id]);
    expect(disabled).toMatchObject({ code: 0, stderr: '' });
    expect(disabled.stdout).toMatch(new RegExp(`^disabled billing-svc \\(id ${billing.id}\\)$`, 'm'));
    expect(disabled.stdout).toMatch(/^status:\s+disabled$/m);

  });

  it('clients list filters: --status, --scope, --prefix', async () => {
    // One process at a time: the embedded database allows one.
    for (const [filter, expected] of [
      [['--status', 'disabled'], [billing.id]],
      [['--scope', 'gsku:read'], [reports.id]],
      [['--prefix', 'bill'], [billing.id]],
    ] as const) {
      const listed = await cli(['clients', 'list', ...filter, '--json']);
      expect(JSON.parse(listed.stdout).clients.map((c: { id: string }) => c.id), filter.join(' ')).toEqual(expected);
    }

  });

  it('clients enable sets a disabled credential active again; unknown is exit 1', async () => {
    const enabled = await cli(['clients', 'enable', 'billing-svc', '--json']);
    expect(enabled).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(enabled.stdout)).toMatchObject({ id: billing.id, status: 'active', name: 'Billing' });

    expectFailure(await cli(['clients', 'enable', 'no-such-client']), 1, /^auth-api: clients enable: not_found: /);
  });

  it('clients revoke by client_id or id; again is not an error; unknown is exit 1', async () => {
    const byClientId = await cli(['clients', 'revoke', 'billing-svc']);
    expect(byClientId).toMatchObject({ code: 0, stdout: `revoked billing-svc (id ${billing.id})\n`, stderr: '' });
    const byId = await cli(['clients', 'revoke', reports.id]);
    expect(byId).toMatchObject({ code: 0, stdout: `revoked reports (id ${reports.id})\n`, stderr: '' });
    const again = await cli(['clients', 'revoke', billing.id]);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringMatching(/^billing-svc \(id .+\) was already revoked at /), stderr: '' });
    expectFailure(await cli(['clients', 'revoke', 'no-such-client']), 1, /^auth-api: clients revoke: not_found: /);
  });

  it('after revocation: list is empty unless --include-revoked; a revoked credential cannot be updated', async () => {
    expect(await cli(['clients', 'list'])).toMatchObject({ code: 0, stdout: 'no service credentials\n' });
    const all = await cli(['clients', 'list', '--include-revoked']);
    expect(all.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s{2,}/).slice(1, 4))).toEqual([
      ['reports', 'Reports', 'revoked'],
      ['billing-svc', 'Billing', 'revoked'],
    ]);
    expectFailure(await cli(['clients', 'update', 'billing-svc', '--name', 'Again']), 1, /^auth-api: clients update: conflict: /);
  });

  it('stores what the routes store: hashes that verify, and audit entries by `cli` with no ip', async () => {
    const database = await connectDatabase(databaseUrl ? { databaseUrl } : { dataDir });
    try {
      const hasher = createBcryptHasher(4);
      const rows = await database.db
        .selectFrom('m2m_clients')
        .innerJoin('m2m_client_secrets as s', 's.client_id', 'm2m_clients.id')
        .select(['m2m_clients.id', 's.secret_hash', 'revoked_at'])
        .orderBy('m2m_clients.created_at')
        .execute();
      expect(rows.map((r) => r.id)).toEqual([billing.id, reports.id]);
      expect(await hasher.verify(billing.secret, rows[0]!.secret_hash)).toBe(true);
      expect(await hasher.verify(reports.secret, rows[1]!.secret_hash)).toBe(true);
      expect(rows.every((r) => r.revoked_at !== null)).toBe(true);
      // The CLI's disable, enable and revokes reach the revocation feed like the routes': one entry per
      // credential, the last change's (revoked: every token refused).
      const feed = await database.db.selectFrom('revocations').select(['kind', 'client_id', 'not_before']).orderBy('client_id').execute();
      expect(feed).toEqual([
        { kind: 'client', client_id: 'billing-svc', not_before: null },
        { kind: 'client', client_id: 'reports', not_before: null },
      ]);

      const admin = await database.db.selectFrom('users').selectAll().where('email', '=', 'ops@example.com').executeTakeFirstOrThrow();
      expect(admin.roles).toEqual(['system_admin']);
      const second = await database.db.selectFrom('users').select('id').where('email', '=', 'second@example.com').executeTakeFirstOrThrow();
      expect(await hasher.verify(NEW_OPS_PASSWORD, admin.password_hash)).toBe(true);

      const audit = await database.db.selectFrom('audit_log').select(['actor', 'actor_id', 'ip', 'action', 'target_id']).orderBy('id').execute();
      expect(audit).toEqual([
        { actor: 'cli', actor_id: null, ip: null, action: 'user.create', target_id: admin.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.create', target_id: second.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.sessions_revoke', target_id: admin.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.disable', target_id: second.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.disable', target_id: admin.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.enable', target_id: admin.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.enable', target_id: second.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.password_reset', target_id: second.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'user.password_reset', target_id: admin.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.create', target_id: billing.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.create', target_id: reports.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.update', target_id: billing.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.update', target_id: billing.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.update', target_id: billing.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.revoke', target_id: billing.id },
        { actor: 'cli', actor_id: null, ip: null, action: 'm2m_client.revoke', target_id: reports.id },
      ]);
    } finally {
      await database.close();
    }
  });

  it('permissions register --file and permissions list: reconcile, idempotent, --json, and bad manifests (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-api-catalog-'));
    try {
      const file = (name: string, body: unknown) => {
        const path = join(dir, name);
        writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body));
        return path;
      };
      // Usage problems are found before the database opens: run them at once.
      const usage: [string[], number, RegExp][] = [
        [['permissions', 'register', '--file', file('bad.json', '{ not json')], 2, /^auth-api: permissions register: --file: .* is not valid JSON$/m],
        [
          ['permissions', 'register', '--file', file('invalid.json', { service: 'core', permissions: [{ code: 'x:y', name: 'x' }, { code: 'x:y', name: 'x' }] })],
          2,
          /^auth-api: permissions register: --file: service: is reserved[\s\S]*--file: permissions\.1\.code: duplicate code "x:y"/,
        ],
        [['permissions', 'register'], 2, /^auth-api: permissions register: --file: is required$/m],
        [['permissions', 'register', '--file', join(dir, 'missing.json')], 2, /^auth-api: permissions register: --file: cannot read .* \(ENOENT\)$/m],
        [['permissions', 'list', '--service', 'Bad Name'], 2, /^auth-api: permissions list: --service: must be lower-case/],
      ];
      const usageResults = await Promise.all(usage.map(([args]) => cli(args)));
      usageResults.forEach((result, i) => {
        expect({ code: result.code, stdout: result.stdout }).toEqual({ code: usage[i]![1], stdout: '' });
        expect(result.stderr).toMatch(usage[i]![2]);
      });
      expect((await cli(['permissions', '--help'])).stdout).toMatch(/permissions list[\s\S]*permissions register/);

      const catalog = file('catalog.json', { service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish', category: 'write' }, { code: 'gsku:read', name: 'Read' }] });
      expect(await cli(['permissions', 'register', '--file', catalog])).toMatchObject({ code: 0, stdout: 'catalog gsku: 2 upserted, 0 pruned\n', stderr: '' });
      expect(await cli(['permissions', 'register', '--file', catalog])).toMatchObject({ code: 0, stdout: 'catalog gsku: unchanged\n' });
      const pruned = await cli(['permissions', 'register', '--file', '-', '--json'], JSON.stringify({ service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish', category: 'write' }] }));
      expect(pruned.code).toBe(0);
      expect(JSON.parse(pruned.stdout)).toEqual({ service: 'gsku', upserted_count: 0, pruned_codes: ['gsku:read'] });

      const listed = await cli(['permissions', 'list']);
      expect(listed).toMatchObject({ code: 0, stderr: '' });
      const lines = listed.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^SERVICE\s+CODE\s+NAME\s+CATEGORY\s+UPDATED$/);
      expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([['gsku', 'gsku:publish', 'Publish', 'write']]);
      const json = JSON.parse((await cli(['permissions', 'list', '--service', 'gsku', '--json'])).stdout);
      expect(json.permissions).toEqual([expect.objectContaining({ code: 'gsku:publish', service: 'gsku', name: 'Publish', category: 'write' })]);
      // The scope rule applies to the CLI too; a code another catalog owns is a conflict (exit 1).
      expectFailure(await cli(['clients', 'create', '--client-id', 'typo-svc', '--name', 'x', '--scope', 'gsku:pubish']), 1, /^auth-api: clients create: unknown_scope: /);
      const conflict = file('conflict.json', { service: 'billing', permissions: [{ code: 'gsku:publish', name: 'x' }] });
      expectFailure(await cli(['permissions', 'register', '--file', conflict]), 1, /^auth-api: permissions register: conflict: .*gsku:publish \(owned by gsku\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('auth-api clients rotate-secret / secrets', () => {
  it('adds a secret (shown once), lists secrets without them, expires the previous one, and refuses a third', async () => {
    const created = JSON.parse((await cli(['clients', 'create', '--client-id', 'rotating-cli', '--name', 'Rotating', '--json'])).stdout);
    const first = await cli(['clients', 'rotate-secret', 'rotating-cli', '--expire-previous-in', '1d']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^added a secret to rotating-cli \\(id ${created.client.id}\\): secret ${UUID.source}, hint [A-Za-z0-9_-]{4}$`, 'm'));
    expect(first.stdout).toMatch(/^other secret .+ \(hint [A-Za-z0-9_-]{4}\): expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    const secret = first.stdout.match(SECRET)![1]!;
    expect(first.stderr).toMatch(/will not be shown again/);

    const listed = await cli(['clients', 'secrets', created.client.id]);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+HINT\s+HASH\s+CREATED\s+LAST USED\s+EXPIRES$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]!.split(/\s{2,}/).slice(2)).toEqual(['bcrypt', expect.any(String), '-', '-']);
    expect(lines[2]!.split(/\s{2,}/)[5]).toMatch(/^\d{4}-/);
    for (const out of [listed.stdout]) {
      expect(out).not.toContain(secret);
      expect(out).not.toContain(created.client_secret);
      expect(out).not.toContain('$2');
    }
    const json = JSON.parse((await cli(['clients', 'secrets', 'rotating-cli', '--json'])).stdout);
    expect(json.secrets).toHaveLength(2);
    expect(Date.parse(json.secrets[1].expires_at) - Date.parse(json.secrets[0].created_at)).toBe(86_400_000);

    expectFailure(await cli(['clients', 'rotate-secret', 'rotating-cli']), 1, /^auth-api: clients rotate-secret: secret_limit: /);
    const usage: [string[], RegExp][] = [
      [['clients', 'rotate-secret', 'rotating-cli', '--expire-previous-in', 'soon'], /^auth-api: clients rotate-secret: --expire-previous-in: must be a duration/],
      [['clients', 'rotate-secret', 'rotating-cli', '--expire-previous-in', '400d'], /^auth-api: clients rotate-secret: --expire-previous-in: must be at most/],
      [['clients', 'rotate-secret'], /^auth-api: clients rotate-secret: expected <id\|client_id>/],
      [['clients', 'secrets', 'Bad Id'], /^auth-api: clients secrets: <id\|client_id>: /],
    ];
    for (const [args, line] of usage) expectFailure(await cli(args), 2, line);
    expectFailure(await cli(['clients', 'secrets', 'no-such-client']), 1, /^auth-api: clients secrets: not_found: /);

    const database = await connectDatabase(databaseUrl ? { databaseUrl } : { dataDir });
    try {
      const hasher = createBcryptHasher(4);
      const rows = await database.db.selectFrom('m2m_client_secrets').select(['secret_hash', 'hash_alg']).where('client_id', '=', created.client.id).orderBy('created_at').execute();
      expect(await hasher.verify(created.client_secret, rows[0]!.secret_hash)).toBe(true);
      expect(await hasher.verify(secret, rows[1]!.secret_hash)).toBe(true);
      const audit = await database.db.selectFrom('audit_log').select(['actor', 'action']).where('target_id', '=', created.client.id).orderBy('id').execute();
      expect(audit).toEqual([
        { actor: 'cli', action: 'm2m_client.create' },
        { actor: 'cli', action: 'm2m_client.secret_add' },
      ]);
    } finally {
      await database.close();
    }
    expect((await cli(['clients', 'rotate-secret', '--help'])).stdout).toMatch(/^Usage: auth-api clients rotate-secret <id\|client_id> \[options\][\s\S]*--expire-previous-in[\s\S]*--json/m);
    expect((await cli(['clients', 'secrets', '--help'])).stdout).toMatch(/^Usage: auth-api clients secrets <id\|client_id> \[options\]/m);
  }, 180_000);
});
