import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Vitest global setup: the README and package tests compile against the built package
 * (dist/), so build it (and the SDK it imports) once before any test file runs, rather
 * than have two files write dist/ at once.
 */
export default function buildPackage(): void {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-b', 'packages/auth-server-ts', 'packages/auth-server-nest'], { cwd: root, stdio: 'inherit' });
}
