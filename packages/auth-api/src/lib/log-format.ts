import type { Writable } from 'node:stream';
import type { Config } from '../config.js';

export type LogFormat = 'pretty' | 'json';

/**
 * How the server writes its log: readable lines for a person watching a
 * terminal in development; JSON lines (one object each) everywhere else, so
 * files, pipes, `docker logs` and log collectors get what they parse.
 */
export function chooseLogFormat(env: Config['env'], stdoutIsTTY: boolean | undefined): LogFormat {
  return env === 'development' && stdoutIsTTY === true ? 'pretty' : 'json';
}

/**
 * A pino destination that prints each JSON line readably (pino-pretty), to
 * `destination` (default: stdout). Redaction has already happened: it only
 * reformats what pino wrote. Loaded on demand: JSON logging never imports it.
 */
export async function prettyLogStream(destination?: Writable): Promise<Writable> {
  const { default: pretty } = await import('pino-pretty');
  return pretty({
    colorize: destination === undefined,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    // Every line reaches the terminal before the process exits.
    sync: true,
    ...(destination === undefined ? {} : { destination }),
  });
}
