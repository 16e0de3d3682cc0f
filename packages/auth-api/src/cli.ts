#!/usr/bin/env node
import { ConfigError } from './config.js';
import { configFromEnvironment, openDatabase, serve } from './main.js';

const HELP = `auth-api: service-credential registry and OAuth 2.0 token server

Usage: auth-api <command>

Commands:
  serve      migrate the database and start the HTTP server
  migrate    apply pending database migrations and exit

Configuration comes from the environment (see README.md): DATABASE_URL (unset: embedded
database under DATA_DIR), JWT_ACCESS_SECRET, PORT, HOST, ...
`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'serve':
      await serve();
      return -1; // keeps running
    case 'migrate': {
      const config = configFromEnvironment();
      const database = await openDatabase(config);
      await database.close();
      process.stdout.write(`migrations applied (${database.kind})\n`);
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`auth-api: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`auth-api: ${err.message}\n`);
    else process.stderr.write(`auth-api: ${describe(err)}\n`);
    process.exitCode = 1;
  },
);

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
