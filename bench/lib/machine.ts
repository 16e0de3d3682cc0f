import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

/** CPU time counters from /proc/stat (Linux): total and stolen (by the hypervisor), in ticks. */
function cpuTicks(): { total: number; steal: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return undefined;
  }
}

export interface MachineReport {
  cores: number;
  loadBefore: number;
  loadAfter: number;
  /** Share of CPU time stolen by the hypervisor during the run, 0–1, when known. */
  steal: number | undefined;
  busy: boolean;
  summary: string;
}

/**
 * Watches how busy the machine is around a benchmark: the 1-minute load
 * average before and after (the bench itself adds up to about 2 runnable
 * processes), and the CPU time stolen meanwhile. Busy: load above the core
 * count, or more than 5% stolen. Figures from a busy run are not comparable
 * with a quiet one; the ratios (measured side by side) still are, within
 * their printed spread.
 */
export function watchMachine() {
  const cores = availableParallelism();
  const loadBefore = loadavg()[0]!;
  const ticksBefore = cpuTicks();
  return {
    finish(): MachineReport {
      const loadAfter = loadavg()[0]!;
      const ticksAfter = cpuTicks();
      const steal = ticksBefore && ticksAfter && ticksAfter.total > ticksBefore.total ? (ticksAfter.steal - ticksBefore.steal) / (ticksAfter.total - ticksBefore.total) : undefined;
      const busy = Math.max(loadBefore, loadAfter) > cores || (steal ?? 0) > 0.05;
      const stealText = steal === undefined ? 'steal unknown' : `${(steal * 100).toFixed(1)}% CPU stolen`;
      const summary = `machine: ${cores} cores, load average ${loadBefore.toFixed(1)} before / ${loadAfter.toFixed(1)} after, ${stealText}${
        busy ? ' — BUSY: other processes competed for the CPU; absolute rates are low, compare the ratios and their spread' : ' — quiet'
      }`;
      return { cores, loadBefore, loadAfter, steal, busy, summary };
    },
  };
}
