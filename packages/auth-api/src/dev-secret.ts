import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Development only: the JWT secret kept in the data folder, generated on first
 * use, so tokens survive a restart without any setup. Production refuses to
 * start without `JWT_ACCESS_SECRET` (see config.ts).
 */
export function devSecretFrom(dataDir: string, warn: (message: string) => void): string {
  const file = join(dataDir, 'jwt-access-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw err;
  }
  warn(`JWT_ACCESS_SECRET is not set: generated one and kept it in ${file} (development only; set JWT_ACCESS_SECRET in production)`);
  return secret;
}
