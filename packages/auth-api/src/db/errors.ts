/**
 * The database could not be opened at start: `unreachable` (PostgreSQL did not
 * answer or refused the connection) or `locked` (another process holds the
 * embedded data folder). The message is complete for an operator and never
 * contains a password.
 */
export class DatabaseOpenError extends Error {
  override name = 'DatabaseOpenError';
  constructor(
    readonly code: 'unreachable' | 'locked',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** SQLSTATE of a unique-constraint violation (same on PostgreSQL and PGlite). */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/**
 * True when an error means the database cannot be reached right now
 * (connection refused or lost, server shutting down, pool timeout), as opposed
 * to a bug in a query. Those answer 503 and are retried by clients.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof e !== 'object') break;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (UNAVAILABLE_NODE_CODES.has(code)) return true;
      // Class 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53300: too many connections.
      if (code.startsWith('08') || code.startsWith('57P') || code === '53300') return true;
    }
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|connection is closed|PGlite is closed/i.test(message)) {
      return true;
    }
    if (e instanceof AggregateError && e.errors.some(isDatabaseUnavailable)) return true;
  }
  return false;
}
