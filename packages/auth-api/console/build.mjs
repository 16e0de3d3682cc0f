#!/usr/bin/env node
// Builds the admin console (Preact + @rw3iss/auth-client, bundled) into dist/console/ of the
// auth-api package, which serves it at /admin. Content-hashed file names, so the server can let
// browsers cache them for good; index.html (never cached) names them. No inline script or style:
// the page runs under `script-src 'self'; style-src 'self'`.
//   node console/build.mjs            (from packages/auth-api; `pnpm build` runs it)
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'dist', 'console');
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: { app: join(here, 'src', 'main.tsx'), style: join(here, 'src', 'styles.css') },
  outdir,
  entryNames: '[name]-[hash]',
  // Paths (and so the content hashes) relative to this folder, whatever the caller's working directory.
  absWorkingDir: here,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox115', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // The SDK from source: auth-client's own tests depend on auth-api, so a package dependency would be a cycle.
  alias: { '@rw3iss/auth-client': join(here, '..', '..', 'auth-client', 'src', 'index.ts') },
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  write: false,
});

// Each file written beside its place and renamed in (index.html last), then stale files removed:
// a server starting meanwhile (tests run in parallel) reads the old set or the new one, never none.
const put = (path, contents) => {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, path);
};
for (const file of result.outputFiles) put(file.path, file.contents);

const files = result.outputFiles.map((f) => basename(f.path));
const js = files.find((f) => /^app-.*\.js$/.test(f));
const css = files.find((f) => /^style-.*\.css$/.test(f));
if (!js || !css) throw new Error(`console build: missing output in ${outdir}: ${files.join(', ')}`);
put(
  join(outdir, 'index.html'),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>auth-api console</title>
<link rel="stylesheet" href="/admin/assets/${basename(css)}">
<script type="module" src="/admin/assets/${basename(js)}"></script>
</head>
<body>
<div id="app"><p class="boot">Loading the console… It needs JavaScript.</p></div>
</body>
</html>
`,
);
const keep = new Set([...files, 'index.html']);
for (const file of readdirSync(outdir)) if (!keep.has(file) && !file.endsWith('.tmp')) rmSync(join(outdir, file), { force: true });
const bytes = Object.entries(result.metafile.outputs).map(([file, out]) => `${basename(file)} ${(out.bytes / 1024).toFixed(1)} KiB`);
// On stderr: `pnpm pack --json` (whose prepack runs this) keeps stdout for its JSON.
console.error(`console built into ${outdir}: ${bytes.join(', ')}`);
