#!/usr/bin/env node
import { COMMANDS } from './cli/commands.js';
import { runCli } from './cli/run.js';

const INTRO = `auth-api: service-credential registry and OAuth 2.0 token server

Usage: auth-api <command> [options]

Every command works on the server's database: DATABASE_URL, or the embedded database
under DATA_DIR. Configuration comes from the environment (README.md, docs/OPERATIONS.md).
Exit codes: 0 done, 1 failed (configuration, database, conflict, not found), 2 bad usage or input.
`;

runCli(process.argv.slice(2), COMMANDS, INTRO, process.env).then(
  (code) => {
    if (code !== 'running') process.exitCode = code;
  },
  (err: unknown) => {
    // runCli reports its own errors; this is a bug in the CLI itself.
    process.stderr.write(`auth-api: unexpected error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
