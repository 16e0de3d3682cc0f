import { defineConfig } from 'vitest/config';
import { projects } from './vitest.workspace.js';

// Vitest 4 ignores vitest.workspace.ts on its own: the project list lives there
// (the layout the design names) and is used here.
export default defineConfig({
  test: {
    // Test files run in parallel, one database each (PGlite takes seconds to boot): 2 cores here.
    maxWorkers: 2,
    projects,
  },
});
