/**
 * What minting a token costs a bare Fastify route (issue #17's bar, docs/BENCHMARKS.md):
 * the bench's bare route, and the same route doing one piece of the grant's work and
 * nothing else (lib/bare-server.ts variants): a new answer string each time; an HS256
 * service token minted by auth-api's issuer; the same token signed with `createHmac`.
 * Interleaved rounds; requests/s and the server's CPU per request (from /proc), each
 * against the fixed answer of the same round. Usage: pnpm build && tsx bench/mint-floor.ts
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { watchMachine } from './lib/machine.js';
import { startScript } from './lib/processes.js';
import { perSecond, printTable, type Row } from './lib/report.js';
import { interleavedRounds, median, ratios, ratioText } from './lib/rounds.js';
import { grantBody } from './lib/server.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const VARIANTS = { fixed: 'fixed answer (baseline)', fresh: 'new answer string each time', mint: 'HS256 token minted by auth-api (lib/tokens.ts)', 'mint-createhmac': 'the same token signed with createHmac' } as const;
type Variant = keyof typeof VARIANTS;

/** CPU time (user + system) of a process, in µs. */
const cpuMicros = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 1e4;
};
/** tsx runs the script in a child process: that one serves. */
const serverPid = (tsxPid: number) => Number(readFileSync(`/proc/${tsxPid}/task/${tsxPid}/children`, 'utf8').trim().split(' ')[0]);

const machine = watchMachine();
const body = grantBody('bench-svc', 'y'.repeat(43));
const servers = {} as Record<Variant, { url: string; pid: number; stop(): Promise<void> }>;
try {
  for (const variant of Object.keys(VARIANTS) as Variant[]) {
    const s = await startScript('bare-server.ts', [variant], '/healthz');
    servers[variant] = { url: `${s.base}/token`, pid: serverPid(s.child.pid!), stop: s.stop };
    await autocannon({ url: servers[variant].url, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, connections: 32, duration: 2 });
  }
  const cpu = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, [] as number[]])) as Record<Variant, number[]>;
  const turn = (variant: Variant) => async () => {
    const before = cpuMicros(servers[variant].pid);
    const r = await autocannon({ url: servers[variant].url, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, connections: 32, duration: SECONDS });
    if (r.non2xx || r.errors) throw new Error(`${variant}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    cpu[variant].push((cpuMicros(servers[variant].pid) - before) / r.requests.total);
    return r.requests.average;
  };
  const rates = await interleavedRounds(Object.fromEntries((Object.keys(VARIANTS) as Variant[]).map((v) => [v, turn(v)])) as Record<Variant, () => Promise<number>>, ROUNDS);
  const group = `mint floor (bare Fastify route, median of ${ROUNDS} interleaved rounds)`;
  const rows: Row[] = (Object.keys(VARIANTS) as Variant[]).map((v) => ({
    group,
    metric: VARIANTS[v],
    value: `${perSecond(median(rates[v]))}, ${median(cpu[v]).toFixed(1)} µs CPU/request`,
    baseline: v === 'fixed' ? '' : `fixed answer ${perSecond(median(rates.fixed))}, ${median(cpu.fixed).toFixed(1)} µs`,
    ratio: v === 'fixed' ? '' : `${ratioText(ratios(rates[v], rates.fixed))} (CPU ${(median(cpu.fixed) / median(cpu[v])).toFixed(2)}×)`,
    bar: '—',
    pass: true,
  }));
  printTable(rows);
} finally {
  for (const s of Object.values(servers)) await s.stop();
}
console.log(machine.finish().summary);
