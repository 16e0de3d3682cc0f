import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';
import { ConfigError } from '../config.js';
import { DatabaseOpenError } from '../db/errors.js';
import { ApiError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true }>>['values'];

/** Process exit codes: documented in the top-level help. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** `running`: the command keeps the process alive (serve). */
export type CommandResult = number | 'running';

export interface Command {
  /** The words that select it: `clients create`. */
  name: string;
  /** Positional arguments, for the usage line: `<id|client_id>`. */
  args?: string;
  summary: string;
  /** Everything after the usage line: description and options. */
  help: string;
  options: Options;
  positionals: number;
  run(values: Record<string, unknown>, positionals: string[], env: NodeJS.ProcessEnv): Promise<CommandResult>;
}

/** Declares a command with its option values typed from its parseArgs options. */
export function command<O extends Options>(spec: Omit<Command, 'options' | 'run'> & { options: O; run(values: Values<O>, positionals: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> }): Command {
  return spec as unknown as Command;
}

/** A mistake in how the command was called (exit 2): unknown option, missing or invalid value. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

/**
 * Checks CLI input with the HTTP route's zod schema, so both accept exactly the
 * same values; problems are reported by flag name (`--client-id: must be ...`).
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown, flagOf: Record<string, string>): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new UsageError(
    parsed.error.issues.map((issue) => {
      const field = String(issue.path[0] ?? '');
      return `${flagOf[field] ?? field}: ${issue.message}`;
    }),
  );
}

export const print = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
const printError = (text: string) => process.stderr.write(`auth-api: ${text}\n`);

function usageLine(c: Command): string {
  const options = Object.keys(c.options).length > 0 ? ' [options]' : '';
  return `Usage: auth-api ${c.name}${c.args ? ` ${c.args}` : ''}${options}`;
}

function overview(commands: Command[], prefix = ''): string {
  const listed = commands.filter((c) => c.name.startsWith(prefix));
  const width = Math.max(...listed.map((c) => `${c.name} ${c.args ?? ''}`.length));
  const lines = listed.map((c) => `  ${`${c.name} ${c.args ?? ''}`.padEnd(width)}  ${c.summary}`);
  return `Commands:\n${lines.join('\n')}\n\nRun \`auth-api <command> --help\` for a command's options.\n`;
}

/**
 * Runs one CLI invocation and returns its exit code. Every error becomes one
 * line per problem on stderr, never a stack trace.
 */
export async function runCli(argv: string[], commands: Command[], intro: string, env: NodeJS.ProcessEnv): Promise<CommandResult> {
  // The longest command name that the leading words spell: `clients create` before `clients`.
  const words = argv.slice(0, 2);
  const found = commands.find((c) => c.name === words.join(' ')) ?? commands.find((c) => c.name === words[0]);
  if (!found) {
    const [first] = argv;
    const group = first && commands.some((c) => c.name.startsWith(`${first} `)) ? first : undefined;
    const list = group ? overview(commands, `${group} `) : overview(commands);
    const asked = argv.length === 0 || (argv.length <= 2 && ['--help', '-h', 'help'].includes(argv.at(-1)!));
    if (asked) {
      print(group ? `Usage: auth-api ${group} <command> [options]\n\n${list}` : `${intro}\n${list}`);
      return EXIT.ok;
    }
    printError(group && argv.length === 1 ? `${group}: a command is required` : `unknown command "${argv.slice(0, group ? 2 : 1).join(' ')}"`);
    process.stderr.write(`\n${list}`);
    return EXIT.usage;
  }

  try {
    const rest = argv.slice(found.name.split(' ').length);
    const { values, positionals } = parseOrThrow(found, rest);
    if (values.help) {
      print(`${usageLine(found)}\n\n${found.help}`);
      return EXIT.ok;
    }
    if (positionals.length !== found.positionals) {
      throw new UsageError([found.positionals === 0 ? `unexpected argument "${positionals[0]}"` : `expected ${found.args}`]);
    }
    return await found.run(values, positionals, env);
  } catch (err) {
    return report(err, found);
  }
}

function parseOrThrow(c: Command, args: string[]) {
  try {
    return parseArgs({ args, options: { ...c.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs' own messages are clear ("Unknown option '--nope'"), and carry no secret.
    throw new UsageError([(err as Error).message]);
  }
}

function report(err: unknown, c: Command): number {
  if (err instanceof UsageError) {
    for (const problem of err.problems) printError(`${c.name}: ${problem}`);
    process.stderr.write(`${usageLine(c)} (see --help)\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError) {
    for (const problem of err.problems) printError(`invalid configuration: ${problem}`);
    return EXIT.failure;
  }
  if (err instanceof DatabaseOpenError) {
    // Complete as it is: where, why and what to do.
    printError(`${c.name}: ${err.message}`);
    return EXIT.failure;
  }
  if (err instanceof ApiError) {
    printError(`${c.name}: ${err.code}: ${err.message}`);
    return EXIT.failure;
  }
  printError(`${c.name}: ${describe(err)}`);
  return EXIT.failure;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // AggregateError (e.g. ECONNREFUSED on every address) has an empty message.
  const message = err.message || (err as { code?: string }).code || err.name;
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${message}${cause}`;
}
