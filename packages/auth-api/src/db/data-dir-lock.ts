import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseOpenError } from './errors.js';

/** The lock file inside the data folder. */
export const LOCK_FILE = 'auth-api.lock';

interface LockOwner {
  pid: number;
  /** When the kernel started that PID (Linux), so a reused PID is not taken for the owner. */
  pidStart: string | undefined;
  command: string;
  startedAt: string;
}

/**
 * One process at a time on an embedded (PGlite) data folder: PGlite is a
 * single-process database, and a second process on the same files would see
 * stale data and lose writes. The lock is a file created exclusively (O_EXCL)
 * holding the owner's PID. A lock left by a process that no longer runs (a
 * crash, `kill -9`) is taken over: a PID that is not alive (or, on Linux, was
 * started after the lock was written: a reused PID) cannot be holding it.
 * Node has no portable OS-level file lock, hence the PID check.
 *
 * Returns the release function (idempotent; also runs if the process exits
 * without closing). Throws a {@link DatabaseOpenError} coded `locked` naming
 * the holder.
 */
export function lockDataDir(dataDir: string, command = process.argv.slice(2).join(' ') || 'node'): () => void {
  const file = join(dataDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, pidStart: processStart(process.pid), command, startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(file);
    if (owner === undefined && ageMs(file) < 2_000) {
      // Just created by another process that has not written its PID yet.
      throw new DatabaseOpenError('locked', `The embedded database in ${dataDir} is being opened by another process right now; only one may use it`);
    }
    if (owner !== undefined && owner.pid !== process.pid && holds(owner)) {
      throw new DatabaseOpenError(
        'locked',
        `The embedded database in ${dataDir} is in use by another process (PID ${owner.pid}, \`auth-api ${owner.command}\`, since ${owner.startedAt}). ` +
          'It allows one process at a time: stop that process first (or let the running server do the work over HTTP), ' +
          `or use PostgreSQL (DATABASE_URL). If no process ${owner.pid} runs, delete ${file}.`,
      );
    }
    // Stale (its process is gone) or unreadable (a crash mid-write): remove and try again, once.
    if (attempt > 0) throw new DatabaseOpenError('locked', `Could not take the lock ${file}: another process keeps creating it`);
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    // Only our own lock: never remove one another process took over.
    if (readOwner(file)?.pid === process.pid) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', release);
  return release;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (!Number.isInteger(owner.pid) || (owner.pid as number) <= 0) return undefined;
    const pidStart = typeof owner.pidStart === 'string' ? owner.pidStart : undefined;
    return { pid: owner.pid as number, pidStart, command: String(owner.command ?? '?'), startedAt: String(owner.startedAt ?? '?') };
  } catch {
    return undefined;
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** Whether the lock's owner still runs: the PID is alive and, where the OS says, is the same process. */
function holds(owner: LockOwner): boolean {
  if (!isAlive(owner.pid)) return false;
  const start = processStart(owner.pid);
  return owner.pidStart === undefined || start === undefined || start === owner.pidStart;
}

/** Linux: the process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); elsewhere undefined. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Signal 0 checks the process exists: ESRCH means gone; EPERM means alive (someone else's). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
