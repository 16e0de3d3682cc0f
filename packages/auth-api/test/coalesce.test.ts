import { describe, expect, it } from 'vitest';
import { coalesceReads } from '../src/lib/coalesce.js';

/** A read whose completion the test controls, recording when each read started. */
function controlledReads() {
  const started: Array<{ key: string; resolve: (v: string) => void; reject: (e: Error) => void }> = [];
  const read = (key: string) => new Promise<string>((resolve, reject) => started.push({ key, resolve, reject }));
  return { started, read };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('coalesceReads', () => {
  it('a caller arriving during a read waits for the next read, shared by all who arrived meanwhile', async () => {
    const { started, read } = controlledReads();
    const get = coalesceReads(read);
    const first = get('a');
    expect(started).toHaveLength(1);
    const late = [get('a'), get('a'), get('a')];
    expect(started).toHaveLength(1); // no read for them yet: the running one began before they arrived
    started[0]!.resolve('state-1');
    expect(await first).toBe('state-1');
    await tick();
    expect(started).toHaveLength(2); // one fresh read for all three
    started[1]!.resolve('state-2');
    expect(await Promise.all(late)).toEqual(['state-2', 'state-2', 'state-2']);
    // Idle again: the next caller starts its own read at once.
    void get('a');
    expect(started).toHaveLength(3);
  });

  it('keys are independent, and a failed read fails only its own callers', async () => {
    const { started, read } = controlledReads();
    const get = coalesceReads(read);
    const a = get('a');
    const b = get('b');
    expect(started.map((s) => s.key)).toEqual(['a', 'b']);
    const aLate = get('a');
    started[0]!.reject(new Error('db down'));
    await expect(a).rejects.toThrow('db down');
    await tick();
    started[2]!.resolve('recovered');
    expect(await aLate).toBe('recovered');
    started[1]!.resolve('b-state');
    expect(await b).toBe('b-state');
  });
});
