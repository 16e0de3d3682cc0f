#!/usr/bin/env node
// Packs every workspace package the way `pnpm pack` / `pnpm publish` would (its prepack
// builds it) and checks each tarball holds every file its package.json points at (main,
// types, bin, every exports target). Run it from a clean clone, with no dist/ anywhere:
//   pnpm check:packs
// Exit 1 with one line per missing file.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
// Under `pnpm <script>`, npm_execpath is the running pnpm (a script or a native binary);
// otherwise pnpm from the PATH.
const execPath = process.env.npm_execpath;
const [pnpm, ...pnpmArgs] = !execPath ? ['pnpm'] : /\.[cm]?js$/.test(execPath) ? [process.execPath, execPath] : [execPath];
const isJs = (file) => /\.[cm]?js$/.test(file);
const out = mkdtempSync(join(tmpdir(), 'check-packs-'));
const problems = [];

/** Every relative file path a package.json field points at. */
function targets(value) {
  if (typeof value === 'string') return value.startsWith('./') || !value.startsWith('.') ? [value.replace(/^\.\//, '')] : [];
  if (value && typeof value === 'object') return Object.values(value).flatMap(targets);
  return [];
}

try {
  for (const dir of readdirSync(join(root, 'packages'))) {
    const packageDir = join(root, 'packages', dir);
    let manifest;
    try {
      manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    } catch {
      continue; // not a Node package (the PHP one)
    }
    const packed = JSON.parse(
      execFileSync(pnpm, [...pnpmArgs, 'pack', '--pack-destination', out, '--json'], { cwd: packageDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    const files = new Set(packed.files.map((f) => f.path));
    const wanted = new Set([
      // The server ships the built admin console it serves at /admin.
      ...(manifest.name === '@rw3iss/auth-api' ? ['dist/console/index.html'] : []),
      ...targets(manifest.main),
      ...targets(manifest.types),
      ...targets(manifest.bin),
      ...targets(manifest.exports).filter((f) => !f.includes('*')),
    ]);
    for (const file of wanted) {
      if (!files.has(file)) problems.push(`${manifest.name}: the tarball has no ${file} (named in package.json)`);
    }
    const js = [...files].filter(isJs).length;
    console.log(`${manifest.name}: ${files.size} files (${js} .js), ${wanted.size} entry points present: ${[...wanted].every((f) => files.has(f))}`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
