import type { Kysely } from 'kysely';
import type { Config } from './config.js';
import type { Database } from './db/schema.js';
import { ApiError } from './errors.js';
import type { PasswordHasher } from './lib/password.js';
import { generatePassword } from './lib/secrets.js';
import { createAdminUser } from './modules/admin-auth/admin-auth.service.js';
import { countUsers } from './modules/admin-auth/users.repository.js';

export interface BootstrapOutput {
  info(message: string): void;
  warn(message: string): void;
  /** Shown to the operator's terminal once, never sent to the log. */
  showOnce(message: string): void;
}

/**
 * First start with no users: create the system_admin from ADMIN_EMAIL /
 * ADMIN_PASSWORD, or (development only) generate a password and show it once.
 * Production without them starts with no admin; `auth-api admin create` adds one.
 */
export async function bootstrapAdmin(config: Config, db: Kysely<Database>, hasher: PasswordHasher, out: BootstrapOutput): Promise<void> {
  if ((await countUsers(db)) > 0) return;
  const production = config.env === 'production';
  const email = config.admin.email ?? (production ? undefined : 'admin@example.com');
  let password = config.admin.password;
  if (!email || (!password && production)) {
    out.warn('No admin user exists and ADMIN_EMAIL/ADMIN_PASSWORD are not set: create one with `auth-api admin create --email <email> --password-stdin`');
    return;
  }
  const generated = !password;
  password ??= generatePassword();
  try {
    await createAdminUser(db, hasher, email, password, { id: null, label: 'bootstrap', ip: null });
  } catch (err) {
    // Another instance bootstrapping at the same moment created it first.
    if (err instanceof ApiError && err.code === 'conflict') return;
    throw err;
  }
  out.info(`created the system_admin ${email}`);
  if (generated) {
    out.showOnce(
      `\n  No admin existed, so one was created (development only):\n    email:    ${email}\n    password: ${password}\n` +
        '  This password is shown once. Set ADMIN_EMAIL and ADMIN_PASSWORD to choose your own.\n\n',
    );
  }
}
