/*
 * Statistics of the benchmark: samples are µs (or ns) in Float64Arrays, one
 * array per block (a row's turn in one pass of a round); quantiles are taken
 * over all of a row's samples, and the median of each block measures the
 * run's noise and pairs the row with its baseline.
 */

/** The quantiles every row reports (nearest rank), with min, max and mean. */
export interface Quantiles {
  n: number;
  min: number;
  p1: number;
  p5: number;
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

const QUANTILE_POINTS = { p1: 0.01, p5: 0.05, p10: 0.1, p25: 0.25, p50: 0.5, p75: 0.75, p90: 0.9, p95: 0.95, p99: 0.99, p999: 0.999 } as const;

/** Nearest-rank quantile of sorted samples: the smallest sample with at least fraction p of the samples at or below it. */
function rank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** All the samples of `parts`, sorted. */
function sortedConcat(parts: readonly Float64Array[]): Float64Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const all = new Float64Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all.sort();
}

export function quantiles(parts: readonly Float64Array[]): Quantiles {
  const s = sortedConcat(parts);
  let sum = 0;
  for (const x of s) sum += x;
  const q = { n: s.length, min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, mean: s.length ? sum / s.length : NaN } as Quantiles;
  for (const [k, p] of Object.entries(QUANTILE_POINTS)) q[k as keyof typeof QUANTILE_POINTS] = rank(s, p);
  return q;
}

export function median(x: Float64Array): number {
  return rank(Float64Array.from(x).sort(), 0.5);
}

/** The samples of one measured row, one array per block, in the order they ran. */
export class Series {
  private readonly parts: Float64Array[] = [];
  private cached: Quantiles | undefined;

  add(samples: Float64Array): void {
    this.parts.push(samples);
    this.cached = undefined;
  }

  get q(): Quantiles {
    return (this.cached ??= quantiles(this.parts));
  }

  /** The median of each block: how much the machine moved under this row from block to block. */
  blockMedians(): number[] {
    return this.parts.map(median);
  }
}

/** µs (or ns) for a table: 3 significant figures or so, never negative, 'n/a' for no figure. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const v = Math.max(0, x);
  return v < 0.1 ? v.toFixed(3) : v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : v.toFixed(0);
}

/** A ratio as 'N.NNx'. */
export function times(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x < 10 ? `${x.toFixed(2)}x` : `${x.toFixed(1)}x`;
}

/** Round for JSON: 4 significant figures are plenty for timings. */
export function round4(x: number): number | null {
  return Number.isFinite(x) ? Number(x.toPrecision(4)) : null;
}
