import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Development only: a secret kept in the data folder, generated on first use
 * (mode 0600), so tokens and keys survive a restart without any setup.
 */
function keptSecret(dataDir: string, name: string, generate: () => string, warning: (file: string) => string, warn: (message: string) => void): string {
  const file = join(dataDir, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = generate();
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw err;
  }
  warn(warning(file));
  return secret;
}

/**
 * Development only: the JWT secret kept in the data folder. Production
 * refuses to start without `JWT_ACCESS_SECRET` (see config.ts).
 */
export function devSecretFrom(dataDir: string, warn: (message: string) => void): string {
  return keptSecret(
    dataDir,
    'jwt-access-secret',
    () => randomBytes(48).toString('base64url'),
    (file) => `JWT_ACCESS_SECRET is not set: generated one and kept it in ${file} (development only; set JWT_ACCESS_SECRET in production)`,
    warn,
  );
}

/**
 * Development only: the key-encryption key for asymmetric signing keys, kept
 * in the data folder beside the database it unlocks. Production refuses to
 * start an asymmetric SERVICE_TOKEN_ALG without `KEY_ENCRYPTION_KEY`.
 */
export function devKeyEncryptionKeyFrom(dataDir: string, warn: (message: string) => void): string {
  return keptSecret(
    dataDir,
    'key-encryption-key',
    () => randomBytes(32).toString('base64url'),
    (file) => `KEY_ENCRYPTION_KEY is not set: generated one and kept it in ${file} (development only; set KEY_ENCRYPTION_KEY in production)`,
    warn,
  );
}

/**
 * Development only: the HMAC key of hmac-sha256 client secrets, kept in the
 * data folder beside the hashes it checks. Production refuses to start
 * CLIENT_SECRET_HASH=hmac-sha256 without `CLIENT_SECRET_PEPPER`.
 */
export function devClientSecretPepperFrom(dataDir: string, warn: (message: string) => void): string {
  return keptSecret(
    dataDir,
    'client-secret-pepper',
    () => randomBytes(48).toString('base64url'),
    (file) => `CLIENT_SECRET_PEPPER is not set: generated one and kept it in ${file} (development only; set CLIENT_SECRET_PEPPER in production)`,
    warn,
  );
}
