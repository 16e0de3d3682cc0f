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
 * What each development secret is: its file in the data folder, its variable
 * (production refuses to start without it, see config.ts) and its size.
 * - `jwt`: the JWT secret (`JWT_ACCESS_SECRET`).
 * - `kek`: the key-encryption key of asymmetric signing keys, beside the database it unlocks.
 * - `pepper`: the HMAC key of hmac-sha256 client secrets, beside the hashes it checks.
 */
const DEV_SECRETS = {
  jwt: { file: 'jwt-access-secret', variable: 'JWT_ACCESS_SECRET', bytes: 48 },
  kek: { file: 'key-encryption-key', variable: 'KEY_ENCRYPTION_KEY', bytes: 32 },
  pepper: { file: 'client-secret-pepper', variable: 'CLIENT_SECRET_PEPPER', bytes: 48 },
} as const;

/** Development only: the secret `kind` kept in `dataDir`, generated (and announced through `warn`) on first use. */
export function devSecretFrom(dataDir: string, kind: keyof typeof DEV_SECRETS, warn: (message: string) => void): string {
  const { file, variable, bytes } = DEV_SECRETS[kind];
  return keptSecret(
    dataDir,
    file,
    () => randomBytes(bytes).toString('base64url'),
    (path) => `${variable} is not set: generated one and kept it in ${path} (development only; set ${variable} in production)`,
    warn,
  );
}
