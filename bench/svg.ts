/*
 * bench/results/latency.svg: the latency distribution of each row as a
 * horizontal box plot on a log scale (whiskers p1-p99, box p25-p75, a bar
 * at the median), one line per row, grouped by section, coloured by where
 * the figure comes from.  Hand-written SVG: any browser shows it.
 */
import type { Family } from './rows.js';
import { fmt, type Quantiles } from './stats.js';

export interface ChartRow {
  name: string;
  section: string;
  family: Family;
  q: Quantiles;
}

const COLOURS: Record<Family, { stroke: string; fill: string; label: string }> = {
  raw: { stroke: '#555555', fill: '#c8c8c8', label: 'raw baseline (no library)' },
  ipi: { stroke: '#1f5fa8', fill: '#9cc3ec', label: 'ipi' },
  peer: { stroke: '#b35900', fill: '#f5c08a', label: 'peer library' },
};

const WIDTH = 1100;
const LABEL_W = 360;
const PLOT_X0 = LABEL_W + 14;
const PLOT_X1 = WIDTH - 90;
const ROW_H = 18;
const TOP = 78;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const px = (x: number): string => x.toFixed(1);

/** The log-scale axis: whole decades around every row's p1..p99. */
function axis(rows: readonly ChartRow[]): { lo: number; hi: number; x: (us: number) => number } {
  const finite = (xs: number[]): number[] => xs.filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.floor(Math.log10(Math.min(...finite(rows.map((r) => r.q.p1)))));
  const hi = Math.ceil(Math.log10(Math.max(...finite(rows.map((r) => r.q.p99)))));
  const span = Math.max(1, hi - lo);
  const x = (us: number): number => PLOT_X0 + ((Math.log10(Math.max(us, 10 ** lo)) - lo) / span) * (PLOT_X1 - PLOT_X0);
  return { lo, hi: lo + span, x };
}

function gridAndTicks(lo: number, hi: number, x: (us: number) => number, y0: number, y1: number): string[] {
  const out: string[] = [];
  for (let d = lo; d <= hi; d++) {
    const v = 10 ** d;
    out.push(`<line x1="${px(x(v))}" y1="${y0}" x2="${px(x(v))}" y2="${y1}" stroke="#bbbbbb" stroke-width="1"/>`);
    const label = `${v >= 1 ? v.toFixed(0) : v.toPrecision(1)} µs`;
    out.push(`<text x="${px(x(v))}" y="${y0 - 6}" text-anchor="middle" class="tick">${label}</text>`);
    out.push(`<text x="${px(x(v))}" y="${y1 + 14}" text-anchor="middle" class="tick">${label}</text>`);
    if (d === hi) break;
    for (const m of [2, 5]) {
      out.push(`<line x1="${px(x(m * v))}" y1="${y0}" x2="${px(x(m * v))}" y2="${y1}" stroke="#e2e2e2" stroke-width="1" stroke-dasharray="3,3"/>`);
    }
  }
  return out;
}

/** One row's box plot, with a tooltip of its quantiles. */
function boxPlot(r: ChartRow, y: number, x: (us: number) => number): string[] {
  const c = COLOURS[r.family];
  const mid = y + ROW_H / 2;
  const { p1, p25, p50, p75, p99, n } = r.q;
  const tip = `${r.name}: n ${n}, p1 ${fmt(p1)}, p25 ${fmt(p25)}, median ${fmt(p50)}, p75 ${fmt(p75)}, p99 ${fmt(p99)} µs`;
  return [
    `<g><title>${esc(tip)}</title>`,
    `<text x="${LABEL_W}" y="${mid + 4}" text-anchor="end" class="label">${esc(r.name)}</text>`,
    `<line x1="${px(x(p1))}" y1="${mid}" x2="${px(x(p99))}" y2="${mid}" stroke="${c.stroke}" stroke-width="1.2"/>`,
    `<line x1="${px(x(p1))}" y1="${mid - 4}" x2="${px(x(p1))}" y2="${mid + 4}" stroke="${c.stroke}" stroke-width="1.2"/>`,
    `<line x1="${px(x(p99))}" y1="${mid - 4}" x2="${px(x(p99))}" y2="${mid + 4}" stroke="${c.stroke}" stroke-width="1.2"/>`,
    `<rect x="${px(x(p25))}" y="${mid - 6}" width="${px(Math.max(1, x(p75) - x(p25)))}" height="12" fill="${c.fill}" stroke="${c.stroke}" stroke-width="1"/>`,
    `<line x1="${px(x(p50))}" y1="${mid - 8}" x2="${px(x(p50))}" y2="${mid + 8}" stroke="#000000" stroke-width="2.5"/>`,
    `<text x="${PLOT_X1 + 8}" y="${mid + 4}" class="value">${fmt(p50)}</text>`,
    '</g>',
  ];
}

function legend(y: number): string[] {
  const out: string[] = [];
  let xl = 8;
  for (const c of Object.values(COLOURS)) {
    out.push(`<rect x="${xl}" y="${y - 9}" width="14" height="10" fill="${c.fill}" stroke="${c.stroke}"/>`);
    out.push(`<text x="${xl + 20}" y="${y}" class="tick">${esc(c.label)}</text>`);
    xl += 34 + c.label.length * 5.5;
  }
  out.push(`<text x="${xl + 10}" y="${y}" class="tick">whiskers p1-p99, box p25-p75, black bar: median (right column, µs)</text>`);
  return out;
}

/** The chart, as SVG text. */
export function latencyChart(rows: readonly ChartRow[], subtitle: string): string {
  const sections = new Set(rows.map((r) => r.section)).size;
  const height = TOP + (rows.length + sections) * ROW_H + 40;
  const { lo, hi, x } = axis(rows);
  const body: string[] = [];
  let y = TOP, section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      body.push(`<text x="8" y="${y + ROW_H - 4}" class="section">${esc(section)}</text>`);
      y += ROW_H;
    }
    body.push(...boxPlot(r, y, x));
    y += ROW_H;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.title{font-size:16px;font-weight:bold}.sub{font-size:11px;fill:#444}.label{font-size:12px}.section{font-size:12px;font-weight:bold;fill:#333}' +
      '.tick{font-size:10px;fill:#444}.value{font-size:11px;fill:#000}</style>',
    `<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    '<text x="8" y="20" class="title">ipi: latency per mechanism, µs (log scale)</text>',
    `<text x="8" y="36" class="sub">${esc(subtitle)}</text>`,
    ...legend(54),
    ...gridAndTicks(lo, hi, x, TOP, y),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
