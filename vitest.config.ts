import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// vitest 4 ignores vitest.workspace.ts: the projects are listed here.
const sdkSource = fileURLToPath(new URL('./packages/auth-server-ts/src/index.ts', import.meta.url));

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'auth-server-ts',
          root: './packages/auth-server-ts',
          include: ['test/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        // The server imports the SDK by its package name; tests run it from source
        // so `pnpm test` needs no build step.
        resolve: { alias: [{ find: /^@rw3iss\/auth-server-ts$/, replacement: sdkSource }] },
        test: {
          name: 'auth-api',
          root: './packages/auth-api',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // PGlite takes seconds to boot: one database per test file, files in parallel (2 cores).
          fileParallelism: true,
          maxWorkers: 2,
        },
      },
      {
        resolve: { alias: [{ find: /^@rw3iss\/auth-server-ts$/, replacement: sdkSource }] },
        test: {
          name: 'auth-client',
          root: './packages/auth-client',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
