import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './process-helpers.js';

/**
 * Vitest global setup: the CLI and production tests spawn the built server
 * (dist/), so build it once before any test file runs. Incremental: about a
 * second when dist is up to date. Once, not per file: files run in parallel
 * and two builds writing dist/ at once would race. The compiler is run with
 * this Node directly: pnpm need not be on the PATH (`npx pnpm@… test`).
 */
export default function buildServer(): void {
  // Every package: the README test runs `pnpm start`/`pnpm example:*` and the examples import the SDK's
  // dist, so they must find everything up to date rather than write dist/ while another test packs it.
  const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', 'packages/auth-server-ts', 'packages/auth-api', 'packages/auth-client'], { cwd: REPO_ROOT, stdio: 'inherit' });
  // The admin console (served at /admin by the built server and by the apps tests build): esbuild, well under a second.
  execFileSync(process.execPath, ['packages/auth-api/console/build.mjs'], { cwd: REPO_ROOT, stdio: 'inherit' });
}
