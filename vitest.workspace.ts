import { fileURLToPath } from 'node:url';
import type { TestProjectConfiguration } from 'vitest/config';

/**
 * The test projects, one per package. Vitest 4 no longer reads this file by
 * itself: `vitest.config.ts` passes this list as `test.projects`. Add a
 * package's project here.
 */
const sdkSrc = fileURLToPath(new URL('./packages/auth-server-ts/src/', import.meta.url));
// The server and the admin SDK import the SDK by its package name; tests run it from
// source (root and the /fastify, /express, /guard subpaths), one module instance for all.
const sdkAlias = [
  { find: /^@rw3iss\/auth-server-ts$/, replacement: `${sdkSrc}index.ts` },
  { find: /^@rw3iss\/auth-server-ts\/(fastify|express|guard)$/, replacement: `${sdkSrc}$1.ts` },
];

export const projects: TestProjectConfiguration[] = [
  {
    test: {
      name: 'auth-server-ts',
      root: './packages/auth-server-ts',
      include: ['test/**/*.test.ts'],
      testTimeout: 20_000,
    },
  },
  {
    resolve: { alias: sdkAlias },
    test: {
      name: 'auth-api',
      root: './packages/auth-api',
      include: ['test/**/*.test.ts'],
      // The CLI and production tests spawn the built server: build it once, first.
      globalSetup: ['./test/build.global.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  },
  {
    resolve: { alias: sdkAlias },
    test: {
      name: 'auth-client',
      root: './packages/auth-client',
      include: ['test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  },
  {
    resolve: { alias: sdkAlias },
    // Nest's decorators are the legacy (experimentalDecorators) kind, with emitted parameter types.
    oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
    test: {
      name: 'auth-server-nest',
      root: './packages/auth-server-nest',
      include: ['test/**/*.test.ts'],
      // The README and package tests compile against the built package: build it once, first.
      globalSetup: ['./test/build.global.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  },
];

export default projects;
