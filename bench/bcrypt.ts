/**
 * bcryptjs (main thread, chunked with setImmediate) vs @node-rs/bcrypt (libuv
 * thread pool): one compare, 50 concurrent compares, and how the event loop
 * fares meanwhile (p99 delay, and the latency of a 1 ms timer standing in for
 * /healthz). Run: pnpm tsx bench/bcrypt.ts [cost]
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as native from '@node-rs/bcrypt';
import bcryptjs from 'bcryptjs';

const cost = Number(process.argv[2] ?? 10);
const secret = 'm2msk_' + 'a'.repeat(43);

interface Impl {
  name: string;
  hash(s: string): Promise<string>;
  verify(s: string, h: string): Promise<boolean>;
}
const impls: Impl[] = [
  { name: 'bcryptjs 3.0.3', hash: (s) => bcryptjs.hash(s, cost), verify: (s, h) => bcryptjs.compare(s, h) },
  { name: '@node-rs/bcrypt 2.0.0', hash: (s) => native.hash(s, { cost }), verify: (s, h) => native.verify(s, h) },
];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function measure(impl: Impl) {
  const hash = await impl.hash(secret);
  const singles: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await impl.verify(secret, hash);
    singles.push(performance.now() - t);
  }
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const pings: number[] = [];
  let running = true;
  const ping = async () => {
    while (running) {
      const t = performance.now();
      await new Promise((r) => setTimeout(r, 1));
      pings.push(performance.now() - t - 1);
    }
  };
  loop.enable();
  const pinger = ping();
  const t = performance.now();
  await Promise.all(Array.from({ length: 50 }, () => impl.verify(secret, hash)));
  const total = performance.now() - t;
  running = false;
  await pinger;
  loop.disable();
  return {
    impl: impl.name,
    'one compare p50 ms': pct(singles, 50).toFixed(1),
    '50 concurrent total ms': total.toFixed(0),
    'event-loop delay p99 ms': (loop.percentile(99) / 1e6).toFixed(1),
    'timer lateness p99 ms': pct(pings, 99).toFixed(1),
  };
}

const rows = [];
for (const impl of impls) rows.push(await measure(impl));
console.log(`bcrypt cost ${cost}, ${process.env.UV_THREADPOOL_SIZE ?? 4} libuv threads`);
console.table(rows);
// Same hashes either way: each verifies the other's.
const a = await impls[0]!.hash(secret);
const b = await impls[1]!.hash(secret);
console.log('interchangeable:', (await impls[1]!.verify(secret, a)) && (await impls[0]!.verify(secret, b)));
