import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The admin console's browser tests (`pnpm test:console`): Playwright (playwright-core) driving the
 * system's Chromium against the built server. Apart from `pnpm test`, which must pass on a machine
 * with Node alone; `.ci/run` installs Chromium and runs these on every run.
 */
const sdkSrc = fileURLToPath(new URL('./packages/auth-server-ts/src/', import.meta.url));
export default defineConfig({
  resolve: { alias: [{ find: /^@rw3iss\/auth-server-ts$/, replacement: `${sdkSrc}index.ts` }] },
  test: {
    name: 'console',
    root: './packages/auth-api/console',
    include: ['test/**/*.e2e.test.ts'],
    // One server and one browser, driven step by step.
    fileParallelism: false,
    testTimeout: 60_000,
    // expect.poll waits up to 1 s by default: a sign-in (bcrypt) on a loaded machine can take longer.
    expect: { poll: { timeout: 15_000, interval: 100 } },
    hookTimeout: 120_000,
    globalSetup: ['../test/build.global.ts'],
  },
});
