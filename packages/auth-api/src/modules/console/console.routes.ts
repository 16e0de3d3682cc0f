import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../../errors.js';
import { errorResponses } from '../../lib/openapi.js';

/**
 * Where `pnpm build` puts the console: `dist/console/` of this package. The same
 * relative path from `src/modules/console/` (tests) and `dist/modules/console/` (built).
 */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../dist/console/', import.meta.url));

/**
 * The console's Content-Security-Policy: its own script and stylesheet only (no
 * inline script or style, no eval), API calls to this origin only, never framed.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

interface Asset {
  body: string;
  type: string;
}

/** The built files, read once: requests never touch the file system, so no path can escape the folder. */
function loadAssets(dir: string): Map<string, Asset> | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const assets = new Map<string, Asset>();
  for (const name of names) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (type) assets.set(name, { body: readFileSync(join(dir, name), 'utf8'), type });
  }
  return assets.has('index.html') ? assets : undefined;
}

export interface ConsoleRoutesOptions {
  /** The built console's folder. */
  dir: string;
  /** Told once at start when the folder holds no built console. */
  onMissing?: (dir: string) => void;
}

/**
 * `GET /admin`: the admin console, static files built by `pnpm build`. A page
 * anyone may load; everything it shows comes from the admin API, which needs a
 * system_admin session. Three files, read into memory at start, served with a
 * strict CSP: a small handler rather than a static-file plugin, as there is no
 * directory to walk, no range or compression to negotiate, nothing to watch.
 */
export const consoleRoutes: FastifyPluginAsyncZod<ConsoleRoutesOptions> = async (app, { dir, onMissing }) => {
  const assets = loadAssets(dir);
  if (!assets) onMissing?.(dir);

  app.addHook('onSend', (_request, reply, payload, done) => {
    reply
      .header('content-security-policy', CONSOLE_CSP)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('cross-origin-resource-policy', 'same-origin');
    done(null, payload);
  });

  app.get(
    '/admin',
    {
      schema: {
        tags: ['console'],
        summary: 'The admin console (a web page)',
        description:
          'The browser console for system_admins: credentials, secrets, permission catalogs and the audit log. Static files with a strict Content-Security-Policy; the session token stays in the page\'s memory (docs/OPERATIONS.md, "The admin console").',
        response: {
          200: z.string().describe('The console page (text/html)'),
          ...errorResponses(['not_found', 'This server was started without the built console (`pnpm build` builds it)']),
        },
      },
    },
    async (_request, reply) => {
      const page = assets?.get('index.html');
      if (!page) throw new ApiError('not_found', 'The admin console is not built into this server: run `pnpm build`');
      // Never cached: it names the current build's files.
      return reply.type(page.type).header('cache-control', 'no-store').send(page.body);
    },
  );

  app.get('/admin/assets/:file', { schema: { hide: true } }, async (request, reply) => {
    const { file } = request.params as { file: string };
    const asset = file === 'index.html' ? undefined : assets?.get(file);
    if (!asset) throw new ApiError('not_found', 'No such console file');
    // Content-hashed names: a new build has new names, so these never change.
    return reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body);
  });
};
