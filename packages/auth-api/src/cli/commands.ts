import { readFileSync, statSync } from 'node:fs';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { connectDatabase } from '../db/connect.js';
import { migrateToLatest } from '../db/migrations.js';
import type { Database } from '../db/schema.js';
import { ApiError } from '../errors.js';
import { systemClock } from '../lib/clock.js';
import { createBcryptHasher, type PasswordHasher } from '../lib/password.js';
import { generatePassword } from '../lib/secrets.js';
import { configFromEnvironment, openDatabase, serve } from '../main.js';
import { emailSchema, newPasswordSchema } from '../modules/admin-auth/admin-auth.schemas.js';
import { createAdminUser } from '../modules/admin-auth/admin-auth.service.js';
import { createAdminUsersService, type AdminUsersService } from '../modules/admin-auth/admin-users.service.js';
import type { Actor } from '../modules/audit/audit.repository.js';
import {
  clientIdSchema,
  createClientBodySchema,
  listClientsQuerySchema,
  type M2MClientRecord,
  type UpdateClientBody,
  updateClientBodySchema,
} from '../modules/m2m-clients/m2m-clients.schemas.js';
import { createM2MClientsService, type M2MClientsService } from '../modules/m2m-clients/m2m-clients.service.js';
import { createClientSecretsService, type ClientSecretsService } from '../modules/m2m-clients/client-secrets.service.js';
import { expirePreviousInSchema } from '../modules/m2m-clients/client-secrets.schemas.js';
import { createClientSecretHasher } from '../lib/client-secret-hash.js';
import { createSigningKeyService, type SigningKeyService } from '../modules/signing-keys/signing-keys.service.js';
import { REGISTER_BODY_LIMIT, type RegisterBody, registerBodySchema, serviceNameSchema } from '../modules/permissions/permissions.schemas.js';
import { createPermissionsService, type PermissionsService } from '../modules/permissions/permissions.service.js';
import { type Command, command, EXIT, print, UsageError, validate } from './run.js';

/** The audit trail's subject for everything done from the command line. */
export const CLI_ACTOR: Actor = { id: null, label: 'cli', ip: null };

const DATABASE_NOTE = `Works on the server's database: DATABASE_URL, or the embedded database under DATA_DIR
(stop the server first when it uses the embedded database: it allows one process at a time).`;

interface Services {
  hasher: PasswordHasher;
  clients: M2MClientsService;
  secrets: ClientSecretsService;
  keys: SigningKeyService;
  users: AdminUsersService;
  permissions: PermissionsService;
  db: Kysely<Database>;
}

/** Opens (and migrates) the server's database, runs `fn` with the same services the HTTP routes use, closes. */
async function withServices<T>(env: NodeJS.ProcessEnv, fn: (services: Services) => Promise<T>): Promise<T> {
  const config = configFromEnvironment(env);
  const database = await openDatabase(config);
  try {
    const hasher = createBcryptHasher(config.bcryptCost);
    // No onChange: a running server reads a credential's state on every grant, so a revoke here applies at once.
    const permissions = createPermissionsService({ db: database.db, clock: systemClock });
    const secretHasher = createClientSecretHasher({ alg: config.clientSecrets.hash, bcrypt: hasher, pepper: config.clientSecrets.pepper });
    const clients = createM2MClientsService({ db: database.db, secrets: secretHasher, clock: systemClock, checkScopes: permissions.assertScopesDefined });
    const secrets = createClientSecretsService({ db: database.db, hasher: secretHasher, clock: systemClock });
    const keys = createSigningKeyService({
      db: database.db,
      clock: systemClock,
      alg: config.serviceTokens.alg,
      keyEncryptionKey: config.serviceTokens.keyEncryptionKey,
      serviceTokenTtlSec: config.serviceTokenTtlSec,
      publishDelaySec: config.serviceTokens.publishDelaySec,
    });
    // Sessions live in the database and are looked up on every request: ending one here applies at once.
    const users = createAdminUsersService({ db: database.db, hasher, clock: systemClock });
    return await fn({ hasher, clients, secrets, permissions, keys, users, db: database.db });
  } finally {
    await database.close();
  }
}

function required<T>(value: T | undefined, flag: string): T {
  if (value === undefined) throw new UsageError([`${flag}: is required`]);
  return value;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password (then Enter and Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline is the end of the line, not part of the password.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

const shortTime = (iso: string | null) => (iso === null ? '-' : iso.replace(/\.\d+Z$/, 'Z'));

/** Plain columns, two spaces apart, for a terminal. */
function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const serveCommand = command({
  name: 'serve',
  summary: 'migrate the database, create the first admin if needed, start the HTTP server',
  help: `Migrates the database, creates the first system_admin from ADMIN_EMAIL/ADMIN_PASSWORD when
no user exists, and listens on HOST:PORT. SIGTERM or SIGINT: finishes in-flight requests and exits 0.
Configuration comes from the environment (README.md).
`,
  options: {},
  positionals: 0,
  async run(_values, _positionals, env) {
    await serve(env);
    return 'running';
  },
});

const migrateCommand = command({
  name: 'migrate',
  summary: 'apply pending database migrations and exit',
  help: `Applies pending migrations (the server also does at every start) and exits.\n\n${DATABASE_NOTE}\n`,
  options: {},
  positionals: 0,
  async run(_values, _positionals, env) {
    const config = configFromEnvironment(env);
    const database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    try {
      const applied = await migrateToLatest(database.db);
      print(applied.length === 0 ? `database is up to date (${database.kind})` : `migrations applied (${database.kind}): ${applied.join(', ')}`);
    } finally {
      await database.close();
    }
    return EXIT.ok;
  },
});

const newAdminSchema = z.object({ email: emailSchema, password: newPasswordSchema });

const adminCreateCommand = command({
  name: 'admin create',
  summary: 'create a system_admin user',
  help: `Creates a user with the system_admin role. Without --password-stdin a strong password is
generated and printed once.

Options:
  --email <email>      the admin's email (required)
  --password-stdin     read the password from standard input (at least 12 characters, at most 72 bytes)

Example:
  printf '%s' "$ADMIN_PASSWORD" | auth-api admin create --email ops@example.com --password-stdin

${DATABASE_NOTE}
`,
  options: { email: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const email = required(values.email, '--email');
    const generated = !values['password-stdin'];
    const password = generated ? generatePassword() : await readStdin();
    const input = validate(newAdminSchema, { email, password }, { email: '--email', password: '--password-stdin' });
    const user = await withServices(env, ({ db, hasher }) => createAdminUser(db, hasher, input.email, input.password, CLI_ACTOR));
    print(`created the system_admin ${user.email} (id ${user.id})`);
    if (generated) {
      print(`password: ${input.password}`);
      process.stderr.write('warning: the password is shown only this once: store it now.\n');
    }
    return EXIT.ok;
  },
});

const emailArg = (value: string | undefined) => validate(emailSchema, value, { '': '<email>' });
const sessionsEnded = (n: number) => `${n} session${n === 1 ? '' : 's'} ended`;

const adminListCommand = command({
  name: 'admin list',
  summary: 'list the users with their roles, status and active sessions',
  help: `Lists every user (never a password or its hash), oldest first: roles, whether it is
disabled, how many sessions are active and when one was last used.

Options:
  --json   print {"users": [...]}

${DATABASE_NOTE}
`,
  options: { json: { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const users = await withServices(env, ({ users }) => users.list());
    if (values.json) print(JSON.stringify({ users }, null, 2));
    else if (users.length === 0) print('no users');
    else
      print(
        table(
          ['ID', 'EMAIL', 'ROLES', 'STATUS', 'SESSIONS', 'LAST SEEN', 'CREATED'],
          users.map((u) => [u.id, u.email, u.roles.join(' ') || '-', u.status, String(u.active_sessions), shortTime(u.last_seen_at), shortTime(u.created_at)]),
        ),
      );
    return EXIT.ok;
  },
});

const adminDisableCommand = command({
  name: 'admin disable',
  args: '<email>',
  summary: 'disable a user: sign-in refused, every session ended at once',
  help: `Disables a user: its sessions end at once (a running server checks them on every request)
and it cannot sign in until \`auth-api admin enable\`. Disabling twice is not an error.

${DATABASE_NOTE}
`,
  options: {},
  positionals: 1,
  async run(_values, [email], env) {
    const address = emailArg(email);
    return withServices(env, async ({ users }) => {
      const { user, sessionsRevoked, already } = await users.disable(address, CLI_ACTOR);
      print(already ? `${user.email} (id ${user.id}) was already disabled; ${sessionsEnded(sessionsRevoked)}` : `disabled ${user.email} (id ${user.id}); ${sessionsEnded(sessionsRevoked)}`);
      if ((await users.activeSystemAdmins()) === 0) {
        process.stderr.write('warning: no enabled system_admin is left: `auth-api admin enable` or `auth-api admin create` adds one back.\n');
      }
      return EXIT.ok;
    });
  },
});

const adminEnableCommand = command({
  name: 'admin enable',
  args: '<email>',
  summary: 'let a disabled user sign in again',
  help: `Lets a disabled user sign in again (no session it had comes back). Consider
\`auth-api admin reset-password\` first if the account was compromised.

${DATABASE_NOTE}
`,
  options: {},
  positionals: 1,
  async run(_values, [email], env) {
    const address = emailArg(email);
    const { user, already } = await withServices(env, ({ users }) => users.enable(address, CLI_ACTOR));
    print(already ? `${user.email} (id ${user.id}) was not disabled` : `enabled ${user.email} (id ${user.id})`);
    return EXIT.ok;
  },
});

const adminResetPasswordCommand = command({
  name: 'admin reset-password',
  args: '<email>',
  summary: "replace a user's password and end its sessions",
  help: `Replaces a user's password and ends every session of that user at once. Without
--password-stdin a strong password is generated and printed once.

Options:
  --password-stdin   read the new password from standard input (at least 12 characters, at most 72 bytes)

Example:
  printf '%s' "$NEW_PASSWORD" | auth-api admin reset-password ops@example.com --password-stdin

${DATABASE_NOTE}
`,
  options: { 'password-stdin': { type: 'boolean' } },
  positionals: 1,
  async run(values, [email], env) {
    const generated = !values['password-stdin'];
    const password = generated ? generatePassword() : await readStdin();
    const input = validate(newAdminSchema, { email, password }, { email: '<email>', password: '--password-stdin' });
    const { user, sessionsRevoked } = await withServices(env, ({ users }) => users.resetPassword(input.email, input.password, CLI_ACTOR));
    print(`reset the password of ${user.email} (id ${user.id}); ${sessionsEnded(sessionsRevoked)}`);
    if (generated) {
      print(`password: ${input.password}`);
      process.stderr.write('warning: the password is shown only this once: store it now.\n');
    }
    return EXIT.ok;
  },
});

const adminRevokeSessionsCommand = command({
  name: 'admin revoke-sessions',
  args: '<email>',
  summary: 'end every session of a user (it can sign in again)',
  help: `Ends every session of a user at once; the user can sign in again with its password
(disable it, or reset the password, to keep it out).

${DATABASE_NOTE}
`,
  options: {},
  positionals: 1,
  async run(_values, [email], env) {
    const address = emailArg(email);
    const { user, sessionsRevoked } = await withServices(env, ({ users }) => users.revokeSessions(address, CLI_ACTOR));
    print(`${user.email} (id ${user.id}): ${sessionsEnded(sessionsRevoked)}`);
    return EXIT.ok;
  },
});

const clientsCreateCommand = command({
  name: 'clients create',
  summary: 'create a service credential; prints its secret once',
  help: `Creates a service credential and prints its client_secret. The secret is shown only this
once (the server keeps a bcrypt hash): store it in a secret manager right away.

Options:
  --client-id <id>       lower-case letters, digits, ".", "_" or "-" (required; never reusable)
  --name <name>          what the service is (required)
  --description <text>   optional
  --scope <scope>        a "service:permission" the credential may assert; repeat for several
  --audience <aud>       an extra audience it may request tokens for; repeat for several
  --json                 print {"client": {...}, "client_secret": "..."} for scripts

Example:
  auth-api clients create --client-id billing-svc --name "Billing backend" --scope gsku:publish

${DATABASE_NOTE}
`,
  options: {
    'client-id': { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    scope: { type: 'string', multiple: true },
    audience: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  },
  positionals: 0,
  async run(values, _positionals, env) {
    const body = validate(
      createClientBodySchema,
      {
        client_id: required(values['client-id'], '--client-id'),
        name: required(values.name, '--name'),
        description: values.description,
        scopes: values.scope,
        allowed_audiences: values.audience,
      },
      { client_id: '--client-id', name: '--name', description: '--description', scopes: '--scope', allowed_audiences: '--audience' },
    );
    const created = await withServices(env, ({ clients }) => clients.create(body, CLI_ACTOR));
    if (values.json) {
      print(JSON.stringify(created, null, 2));
    } else {
      const { client } = created;
      print(`created the service credential ${client.client_id} (id ${client.id})`);
      print(`scopes: ${client.scopes.join(' ') || '(none)'}`);
      print(`client_secret: ${created.client_secret}`);
    }
    process.stderr.write('warning: the client secret will not be shown again: store it in a secret manager now.\n');
    return EXIT.ok;
  },
});

const clientsListCommand = command({
  name: 'clients list',
  summary: 'list the credentials that are not revoked, newest first',
  help: `Lists every credential that is not revoked, newest first (never a secret or its hash).
The filters are those of GET /api/v1/admin/m2m-clients and combine.

Options:
  --status <active|disabled>   only credentials with this status
  --scope <scope>              only credentials holding this scope
  --prefix <text>              only credentials whose client_id starts with this
  --include-revoked            revoked credentials too
  --json                       print {"clients": [...]}, the same records as the HTTP API

${DATABASE_NOTE}
`,
  options: {
    status: { type: 'string' },
    scope: { type: 'string' },
    prefix: { type: 'string' },
    'include-revoked': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  positionals: 0,
  async run(values, _positionals, env) {
    const query = validate(
      listClientsQuerySchema,
      { status: values.status, scope: values.scope, client_id_prefix: values.prefix, include_revoked: values['include-revoked'] ? 'true' : undefined },
      { status: '--status', scope: '--scope', client_id_prefix: '--prefix' },
    );
    const { clients } = await withServices(env, ({ clients }) => clients.list(query));
    if (values.json) print(JSON.stringify({ clients }, null, 2));
    else if (clients.length === 0) print('no service credentials');
    else
      print(
        table(
          ['ID', 'CLIENT_ID', 'NAME', 'STATUS', 'SCOPES', 'LAST USED', 'CREATED'],
          clients.map((c) => [c.id, c.client_id, c.name, c.revoked_at ? 'revoked' : c.status, c.scopes.join(' ') || '-', shortTime(c.last_used_at), shortTime(c.created_at)]),
        ),
      );
    return EXIT.ok;
  },
});

/** A UUID is tried as the record id first: a client_id may also look like one. */
async function findCredential(clients: M2MClientsService, idOrClientId: string): Promise<M2MClientRecord> {
  if (z.uuid().safeParse(idOrClientId).success) {
    try {
      return await clients.get(idOrClientId);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'not_found')) throw err;
    }
  }
  return clients.getByClientId(idOrClientId);
}

/** The positional `<id|client_id>`, checked before the database is opened. */
function credentialKey(target: string | undefined): string {
  // client_ids never look like UUIDs (the schema refuses them), so a target is one or the other.
  return z.uuid().safeParse(target).success ? target! : validate(clientIdSchema, target, { '': '<id|client_id>' });
}

function describeCredential(c: M2MClientRecord): string {
  const rows: [string, string][] = [
    ['id', c.id],
    ['client_id', c.client_id],
    ['name', c.name],
    ['description', c.description ?? '-'],
    ['status', c.revoked_at ? `revoked (was ${c.status})` : c.status],
    ['scopes', c.scopes.join(' ') || '(none)'],
    ...(c.orphaned_scopes.length > 0 ? [['orphaned', `${c.orphaned_scopes.join(' ')} (no catalog defines them: never granted)`] as [string, string]] : []),
    ['audiences', c.allowed_audiences.join(' ') || '(only the default, JWT_AUDIENCE)'],
    ['created', `${shortTime(c.created_at)}${c.created_by ? ` by ${c.created_by}` : ''}`],
    ['updated', shortTime(c.updated_at)],
    ['last used', shortTime(c.last_used_at)],
    ['revoked', shortTime(c.revoked_at)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}  ${v}`).join('\n');
}

const clientsShowCommand = command({
  name: 'clients show',
  args: '<id|client_id>',
  summary: 'show one credential, revoked ones included',
  help: `Shows one credential, by its id (UUID) or its client_id (never its secret or its hash).

Options:
  --json   print the record, the same as GET /api/v1/admin/m2m-clients/:id

${DATABASE_NOTE}
`,
  options: { json: { type: 'boolean' } },
  positionals: 1,
  async run(values, [target], env) {
    const key = credentialKey(target);
    const credential = await withServices(env, ({ clients }) => findCredential(clients, key));
    print(values.json ? JSON.stringify(credential, null, 2) : describeCredential(credential));
    return EXIT.ok;
  },
});

/** Applies `changes` to the credential named on the command line and prints the result. */
async function changeCredential(env: NodeJS.ProcessEnv, target: string | undefined, changes: UpdateClientBody, json: boolean | undefined, verb: string) {
  const key = credentialKey(target);
  const updated = await withServices(env, async ({ clients }) => clients.update((await findCredential(clients, key)).id, changes, CLI_ACTOR));
  print(json ? JSON.stringify(updated, null, 2) : `${verb} ${updated.client_id} (id ${updated.id})\n${describeCredential(updated)}`);
  return EXIT.ok;
}

const clientsUpdateCommand = command({
  name: 'clients update',
  args: '<id|client_id>',
  summary: 'change a credential\'s name, description, scopes or audiences',
  help: `Changes a credential, by its id (UUID) or its client_id. Only the options given change;
--scope and --audience replace the whole list. A revoked credential cannot be changed.
New scopes apply to the next token; tokens already issued keep theirs until they expire.

Options:
  --name <name>          what the service is
  --description <text>   free text ("" empties it)
  --scope <scope>        a "service:permission" the credential may assert; repeat for several
  --audience <aud>       an extra audience it may request tokens for; repeat for several
  --json                 print the changed record

Example:
  auth-api clients update billing-svc --scope gsku:publish --scope gsku:read --audience catalog-api

${DATABASE_NOTE}
`,
  options: {
    name: { type: 'string' },
    description: { type: 'string' },
    scope: { type: 'string', multiple: true },
    audience: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  },
  positionals: 1,
  async run(values, [target], env) {
    const changes = validate(
      updateClientBodySchema,
      { name: values.name, description: values.description, scopes: values.scope, allowed_audiences: values.audience },
      { name: '--name', description: '--description', scopes: '--scope', allowed_audiences: '--audience', '': 'options' },
    );
    return changeCredential(env, target, changes, values.json, 'updated');
  },
});

function statusCommand(status: 'active' | 'disabled') {
  const name = status === 'active' ? 'enable' : 'disable';
  return command({
    name: `clients ${name}`,
    args: '<id|client_id>',
    summary: status === 'active' ? 'let a disabled credential obtain tokens again' : 'stop a credential obtaining tokens, reversibly',
    help: `${
      status === 'active'
        ? 'Sets a disabled credential active again: it can obtain tokens from the next grant on.'
        : `Sets a credential disabled: from the next grant on it obtains no tokens (invalid_client),
until \`clients enable\`. Tokens already issued stay valid until they expire. To end a
credential for good, use \`clients revoke\`.`
    }
By its id (UUID) or its client_id.

Options:
  --json   print the changed record

${DATABASE_NOTE}
`,
    options: { json: { type: 'boolean' } },
    positionals: 1,
    run: (values, [target], env) => changeCredential(env, target, { status }, values.json, `${name}d`),
  });
}

const clientsRevokeCommand = command({
  name: 'clients revoke',
  args: '<id|client_id>',
  summary: 'revoke a credential (soft, idempotent)',
  help: `Revokes a credential, by its id (UUID) or its client_id. Tokens already issued stay valid
until they expire (SERVICE_TOKEN_TTL); no new ones are granted. Revoking twice is not an error.

${DATABASE_NOTE}
`,
  options: {},
  positionals: 1,
  async run(_values, [target], env) {
    const key = credentialKey(target);
    return withServices(env, async ({ clients }) => {
      const credential = await findCredential(clients, key);
      if (credential.revoked_at) {
        print(`${credential.client_id} (id ${credential.id}) was already revoked at ${shortTime(credential.revoked_at)}`);
        return EXIT.ok;
      }
      await clients.revoke(credential.id, CLI_ACTOR);
      print(`revoked ${credential.client_id} (id ${credential.id})`);
      return EXIT.ok;
    });
  },
});

const DURATION = /^(\d{1,9})([smhd]?)$/;
const SECONDS_PER = { '': 1, s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `90`, `90s`, `15m`, `12h`, `1d` → seconds; checked with the route's schema. */
function durationArg(value: string, flag: string): number {
  const match = DURATION.exec(value.trim());
  if (!match) throw new UsageError([`${flag}: must be a duration such as 3600, 90s, 15m, 12h or 1d`]);
  const seconds = Number(match[1]) * SECONDS_PER[match[2] as keyof typeof SECONDS_PER];
  return validate(expirePreviousInSchema, seconds, { '': flag });
}

const SECRETS_NOTE = `A credential holds at most two live secrets; the grant accepts either. Rotation: add a
secret, deploy it, watch the old one's LAST USED (\`clients secrets\`), then let it expire
(--expire-previous-in) or delete it (DELETE /api/v1/admin/m2m-clients/:id/secrets/:secretId).`;

const clientsRotateSecretCommand = command({
  name: 'clients rotate-secret',
  args: '<id|client_id>',
  summary: 'add a secret to a credential (rotation); prints it once',
  help: `Adds a secret to a credential, by its id (UUID) or its client_id, and prints it once
(the server keeps only a hash). The credential's current secret keeps working until it is
deleted or, with --expire-previous-in, until that time. Refused (exit 1, secret_limit) when
the credential already has two live secrets.

Options:
  --expire-previous-in <duration>   expire the other live secret after this long: 3600, 90s, 15m, 12h, 1d (0: at once)
  --json                            print {"secret": {...}, "client_secret": "..."} for scripts

Example:
  auth-api clients rotate-secret billing-svc --expire-previous-in 1d

${SECRETS_NOTE}

${DATABASE_NOTE}
`,
  options: { 'expire-previous-in': { type: 'string' }, json: { type: 'boolean' } },
  positionals: 1,
  async run(values, [target], env) {
    const key = credentialKey(target);
    const expire = values['expire-previous-in'];
    const body = expire === undefined ? {} : { expire_previous_in: durationArg(expire, '--expire-previous-in') };
    const { credential, created, secrets } = await withServices(env, async ({ clients, secrets }) => {
      const credential = await findCredential(clients, key);
      const created = await secrets.rotate(credential.id, body, CLI_ACTOR);
      return { credential, created, secrets: await secrets.list(credential.id) };
    });
    if (values.json) print(JSON.stringify(created, null, 2));
    else {
      print(`added a secret to ${credential.client_id} (id ${credential.id}): secret ${created.secret.id}, hint ${created.secret.hint}`);
      for (const other of secrets.filter((s) => s.id !== created.secret.id)) {
        print(`other secret ${other.id} (hint ${other.hint || '-'}): ${other.expires_at ? `expires ${shortTime(other.expires_at)}` : 'no expiry (delete it once unused)'}`);
      }
      print(`client_secret: ${created.client_secret}`);
    }
    process.stderr.write('warning: the client secret will not be shown again: store it in a secret manager now.\n');
    return EXIT.ok;
  },
});

const clientsSecretsCommand = command({
  name: 'clients secrets',
  args: '<id|client_id>',
  summary: "list a credential's secrets: hint, last used, expiry (never a secret)",
  help: `Lists a credential's secrets, newest first, by its id (UUID) or its client_id: id, hint
(a short non-secret tag), how each is stored, when it was created and last used (one-minute
resolution) and when it expires. Never a secret or its hash.

Options:
  --json   print {"secrets": [...]}, the same records as GET /api/v1/admin/m2m-clients/:id/secrets

${SECRETS_NOTE}

${DATABASE_NOTE}
`,
  options: { json: { type: 'boolean' } },
  positionals: 1,
  async run(values, [target], env) {
    const key = credentialKey(target);
    const secrets = await withServices(env, async ({ clients, secrets }) => secrets.list((await findCredential(clients, key)).id));
    const now = Date.now();
    if (values.json) print(JSON.stringify({ secrets }, null, 2));
    else
      print(
        table(
          ['ID', 'HINT', 'HASH', 'CREATED', 'LAST USED', 'EXPIRES'],
          secrets.map((s) => [
            s.id,
            s.hint || '-',
            s.hash_alg,
            shortTime(s.created_at),
            shortTime(s.last_used_at),
            s.expires_at === null ? '-' : `${shortTime(s.expires_at)}${Date.parse(s.expires_at) <= now ? ' (expired)' : ''}`,
          ]),
        ),
      );
    return EXIT.ok;
  },
});

const KEYS_NOTE = `SERVICE_TOKEN_ALG (ES256 or EdDSA) sets the algorithm of new keys; KEY_ENCRYPTION_KEY
encrypts them (generated into DATA_DIR in development). See docs/TRUST.md.`;

const keysListCommand = command({
  name: 'keys list',
  summary: 'list the service-token signing keys and their states',
  help: `Lists every asymmetric signing key, oldest first: next (published, not signing yet),
current (signs), retiring (published until its tokens have expired), retired.
Never prints a private key.

Options:
  --json   print {"keys": [...]}, the same records as GET /api/v1/admin/keys

${DATABASE_NOTE}
`,
  options: { json: { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const keys = await withServices(env, ({ keys }) => keys.list());
    if (values.json) print(JSON.stringify({ keys }, null, 2));
    else if (keys.length === 0) print('no signing keys (SERVICE_TOKEN_ALG=HS256 signs with JWT_ACCESS_SECRET)');
    else
      print(
        table(
          ['KID', 'ALG', 'STATE', 'CREATED', 'SIGNS FROM', 'PUBLISHED UNTIL'],
          keys.map((k) => [k.kid, k.alg, k.state, shortTime(k.created_at), shortTime(k.activated_at ?? k.activates_at), shortTime(k.retired_at ?? k.retire_at)]),
        ),
      );
    return EXIT.ok;
  },
});

/** Reads a catalog manifest file (or `-` for stdin), bounded like the HTTP route's body. */
async function readManifest(file: string): Promise<RegisterBody> {
  let text: string;
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of process.stdin) {
        size += (chunk as Buffer).length;
        if (size > REGISTER_BODY_LIMIT) throw new UsageError([`--file: standard input is larger than ${REGISTER_BODY_LIMIT / 1024} KiB`]);
        chunks.push(chunk as Buffer);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      if (statSync(file).size > REGISTER_BODY_LIMIT) throw new UsageError([`--file: ${file} is larger than ${REGISTER_BODY_LIMIT / 1024} KiB`]);
      text = readFileSync(file, 'utf8');
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError([`--file: cannot read ${file} (${(err as { code?: string }).code ?? 'error'})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError([`--file: ${file} is not valid JSON`]);
  }
  const parsed = registerBodySchema.safeParse(json);
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((issue) => `--file: ${issue.path.join('.') || '(top level)'}: ${issue.message}`));
  return parsed.data;
}

const permissionsRegisterCommand = command({
  name: 'permissions register',
  summary: "reconcile a service's permission catalog with a manifest file",
  help: `Reconciles one service's permission catalog with a manifest, exactly as
POST /api/v1/admin/permissions/register does: every declared permission is inserted or updated,
the service's permissions the manifest no longer declares are pruned (credentials holding them
see them as orphaned and stop being granted them). The same manifest again changes nothing.

The manifest is JSON: {"service": "gsku", "permissions": [{"code": "gsku:publish", "name": "Publish",
"description": "...", "resource": "...", "action": "...", "category": "..."}]} (1 to 1000 permissions,
at most 1 MiB; codes are lower-case "namespace:permission" scopes; "core" and "auth" are reserved).

Options:
  --file <path>   the manifest (required); "-" reads standard input
  --json          print {"service", "upserted_count", "pruned_codes"}

Example:
  auth-api permissions register --file catalog.json

${DATABASE_NOTE}
`,
  options: { file: { type: 'string' }, json: { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const body = await readManifest(required(values.file, '--file'));
    const result = await withServices(env, ({ permissions }) => permissions.register(body, { kind: 'admin', actor: CLI_ACTOR }));
    if (values.json) print(JSON.stringify(result, null, 2));
    else if (result.upserted_count === 0 && result.pruned_codes.length === 0) print(`catalog ${result.service}: unchanged`);
    else {
      print(`catalog ${result.service}: ${result.upserted_count} upserted, ${result.pruned_codes.length} pruned`);
      if (result.pruned_codes.length > 0) print(`pruned: ${result.pruned_codes.join(' ')}`);
    }
    return EXIT.ok;
  },
});

const keysRotateCommand = command({
  name: 'keys rotate',
  summary: 'schedule a signing-key rotation (the new key is published before it signs)',
  help: `Creates the next signing key: published in the JWKS now, signing from SIGNING_KEY_PUBLISH_DELAY
(default twice JWKS_MAX_AGE) plus one refresh (30 s) later, so every verifier has it before
any token uses it. A running server makes it current then and keeps the old key published
until every token it signed has expired. While a rotation is scheduled, running this again
changes nothing and prints the scheduled key. Audited.

Before switching a server from HS256 to ES256/EdDSA, run this with SERVICE_TOKEN_ALG set
to the new algorithm: the key is published ahead of the switch (docs/TRUST.md).

Options:
  --json   print {"created": true|false, "key": {...}}

${KEYS_NOTE}

${DATABASE_NOTE}
`,
  options: { json: { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const result = await withServices(env, ({ keys }) => keys.rotate(CLI_ACTOR));
    if (values.json) print(JSON.stringify(result, null, 2));
    else {
      const { key } = result;
      print(`${result.created ? 'created' : 'a rotation is already scheduled:'} next key ${key.kid} (${key.alg}), published now, signs from ${shortTime(key.activates_at)}`);
    }
    return EXIT.ok;
  },
});

const permissionsListCommand = command({
  name: 'permissions list',
  summary: 'list registered permissions, by service then code',
  help: `Lists every registered permission, or one service's.

Options:
  --service <name>   only this catalog
  --json             print {"permissions": [...]}, the same records as GET /api/v1/admin/permissions

${DATABASE_NOTE}
`,
  options: { service: { type: 'string' }, json: { type: 'boolean' } },
  positionals: 0,
  async run(values, _positionals, env) {
    const service = values.service === undefined ? undefined : validate(serviceNameSchema, values.service, { '': '--service' });
    const permissions = await withServices(env, ({ permissions }) => permissions.list(service));
    if (values.json) print(JSON.stringify({ permissions }, null, 2));
    else if (permissions.length === 0) print(service === undefined ? 'no permissions registered' : `no permissions in the catalog ${service}`);
    else
      print(
        table(
          ['SERVICE', 'CODE', 'NAME', 'CATEGORY', 'UPDATED'],
          permissions.map((p) => [p.service, p.code, p.name, p.category ?? '-', shortTime(p.updated_at)]),
        ),
      );
    return EXIT.ok;
  },
});

export const COMMANDS: Command[] = [
  serveCommand,
  migrateCommand,
  adminCreateCommand,
  adminListCommand,
  adminDisableCommand,
  adminEnableCommand,
  adminResetPasswordCommand,
  adminRevokeSessionsCommand,
  clientsCreateCommand,
  clientsListCommand,
  clientsShowCommand,
  clientsUpdateCommand,
  statusCommand('disabled'),
  statusCommand('active'),
  clientsRevokeCommand,
  clientsRotateSecretCommand,
  clientsSecretsCommand,
  keysListCommand,
  keysRotateCommand,
  permissionsListCommand,
  permissionsRegisterCommand,
];
