/**
 * `pnpm bench`: every benchmark, one table. Each figure stands next to a
 * baseline measured in the same run; bars are checked on the ratios. Bounded
 * (a few minutes), loopback only, never part of `pnpm test`. Exit code 1 when
 * a bar is missed. See docs/BENCHMARKS.md.
 */
import { run as flood } from './flood.js';
import { run as catalogGrants } from './catalog-grants.js';
import { run as grants } from './grants.js';
import { run as secretHash } from './secret-hash.js';
import { printTable, type Row } from './lib/report.js';
import { run as tokenManager } from './token-manager.js';
import { run as verifier } from './verifier.js';

const started = Date.now();
const rows: Row[] = [];
for (const [name, bench] of [
  ['server (grants, cold grants, memory)', grants],
  ['server under a bcrypt flood', flood],
  ['grants with catalogs', catalogGrants],
  ['cold grants by CLIENT_SECRET_HASH', secretHash],
  ['verifier', verifier],
  ['token manager', tokenManager],
] as const) {
  process.stderr.write(`running ${name}…\n`);
  rows.push(...(await bench()));
}
console.log(`\nbenchmarks: ${new Date().toISOString()}, node ${process.version}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
printTable(rows);
const missed = rows.filter((r) => !r.pass);
if (missed.length > 0) {
  console.log(`${missed.length} bar(s) missed: ${missed.map((r) => `${r.group} / ${r.metric}`).join('; ')}`);
  process.exitCode = 1;
}
