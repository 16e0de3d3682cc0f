/**
 * Side-by-side measurement on a noisy machine: every side takes a turn in each
 * round, the order rotated from round to round (A B C, B C A, C A B, …), so a
 * burst of outside load falls on all sides alike. Ratios are taken round by
 * round and summarised by their median and range.
 */
export async function interleavedRounds<K extends string>(sides: Record<K, () => Promise<number>>, rounds: number): Promise<Record<K, number[]>> {
  const names = Object.keys(sides) as K[];
  const rates = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length]!;
      rates[name].push(await sides[name]());
    }
  }
  return rates;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Round-by-round ratios a[i] / b[i]: median, min and max. */
export function ratios(a: number[], b: number[]) {
  const each = a.map((x, i) => x / b[i]!);
  return { median: median(each), min: Math.min(...each), max: Math.max(...each) };
}

/** "3.41× (3.10–3.62×)": the median ratio and its range over the rounds. */
export const ratioText = (r: { median: number; min: number; max: number }) => `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)}×)`;
