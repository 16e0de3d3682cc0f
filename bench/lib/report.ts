/**
 * One row of the benchmark table: a figure next to its baseline measured in
 * the same run (absolute numbers drift on shared machines; ratios hold), and
 * the bar it must clear.
 */
export interface Row {
  /** e.g. "1. repeat grants". */
  group: string;
  metric: string;
  /** The figure, formatted (e.g. "5,210/s", "3.1 ms"). */
  value: string;
  /** What it is compared with, e.g. "oidc-provider 1,200/s"; empty when absolute. */
  baseline: string;
  /** value / baseline as "4.3×", or empty. */
  ratio: string;
  /** The bar, e.g. "≥ 3×". */
  bar: string;
  pass: boolean;
}

export const perSecond = (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`;
export const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 1)} ms`;
export const times = (n: number) => `${n.toFixed(2)}×`;

export function printTable(rows: Row[]): void {
  console.table(rows.map((r) => ({ benchmark: r.group, metric: r.metric, value: r.value, baseline: r.baseline, ratio: r.ratio, bar: r.bar, ok: r.pass ? 'yes' : 'NO' })));
}
