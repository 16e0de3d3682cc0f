/**
 * Why a job was not run: the budget is saturated. Callers answer 503 with
 * `Retry-After: retryAfterSec` instead of queueing without end.
 */
export class BudgetExceededError extends Error {
  override name = 'BudgetExceededError';
  constructor(
    readonly reason: 'queue_full' | 'wait_exceeded',
    readonly retryAfterSec: number,
  ) {
    super(`work budget exceeded (${reason})`);
  }
}

export interface WorkBudgetOptions {
  /** Jobs running at once. Keep it below libuv's pool size (4) so other pool users always find a thread. */
  concurrency: number;
  /** Longest a job may wait for its turn, in ms; past it the job is shed. */
  maxWaitMs: number;
  /** Jobs waiting in all, across every party. */
  maxQueued: number;
  /** Jobs waiting per party (address): one party cannot fill the queue. */
  maxQueuedPerParty: number;
}

interface Waiter {
  start(): void;
  shed(err: BudgetExceededError): void;
}

/**
 * A bounded budget for expensive work (bcrypt): at most `concurrency` jobs
 * run, the rest wait in one queue per party and are served round-robin, so a
 * flood from a few addresses delays a newcomer by about one job per party,
 * not by the whole backlog. A job that cannot be queued, or waits longer than
 * `maxWaitMs`, is shed with {@link BudgetExceededError}.
 */
export function createWorkBudget({ concurrency, maxWaitMs, maxQueued, maxQueuedPerParty }: WorkBudgetOptions) {
  let running = 0;
  let queued = 0;
  // Map order is the round-robin order: a served party goes to the back.
  const queues = new Map<string, Waiter[]>();
  const retryAfterSec = Math.max(1, Math.ceil(maxWaitMs / 1000));

  function next() {
    while (running < concurrency) {
      const first = queues.entries().next();
      if (first.done) return;
      const [party, waiters] = first.value;
      queues.delete(party);
      const waiter = waiters.shift()!;
      if (waiters.length > 0) queues.set(party, waiters);
      queued -= 1;
      running += 1;
      waiter.start();
    }
  }

  /** Sheds the newest waiter of the longest queue if it is longer than `than` + 1. */
  function pushOut(than: number): boolean {
    let longest: [string, Waiter[]] | undefined;
    for (const entry of queues) if (!longest || entry[1].length > longest[1].length) longest = entry;
    if (!longest || longest[1].length <= than + 1) return false;
    const [party, list] = longest;
    const victim = list.pop()!;
    if (list.length === 0) queues.delete(party);
    queued -= 1;
    victim.shed(new BudgetExceededError('queue_full', retryAfterSec));
    return true;
  }

  return {
    /**
     * Runs `job` within the budget, for `party` (e.g. the caller's address key).
     * `trusted` work (an admin creating a credential) waits its turn like any
     * other but is never shed.
     */
    run<T>(party: string, job: () => Promise<T>, { trusted = false }: { trusted?: boolean } = {}): Promise<T> {
      const execute = () =>
        job().finally(() => {
          running -= 1;
          next();
        });
      if (running < concurrency && queued === 0) {
        running += 1;
        return execute();
      }
      const waiters = queues.get(party) ?? [];
      if (!trusted) {
        if (waiters.length >= maxQueuedPerParty) return Promise.reject(new BudgetExceededError('queue_full', retryAfterSec));
        // A full queue makes room from the party holding the most places, never from a smaller one:
        // a newcomer is not shut out by a few parties' backlog.
        if (queued >= maxQueued && !pushOut(waiters.length)) return Promise.reject(new BudgetExceededError('queue_full', retryAfterSec));
      }
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter = {
          start: () => {
            clearTimeout(timer);
            execute().then(resolve, reject);
          },
          shed: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        const timer = trusted ? undefined : setTimeout(() => {
          const list = queues.get(party);
          const at = list?.indexOf(waiter) ?? -1;
          if (at < 0) return;
          list!.splice(at, 1);
          if (list!.length === 0) queues.delete(party);
          queued -= 1;
          waiter.shed(new BudgetExceededError('wait_exceeded', retryAfterSec));
        }, maxWaitMs);
        timer?.unref();
        waiters.push(waiter);
        if (waiters.length === 1) queues.set(party, waiters);
        queued += 1;
      });
    },
    /** Jobs running and waiting now (for metrics and tests). */
    load: () => ({ running, queued }),
  };
}

export type WorkBudget = ReturnType<typeof createWorkBudget>;
