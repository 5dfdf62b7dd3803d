// Long ranges. Past a couple of hours the tracks stop drawing every stored point: they ask
// /api/v1/data/series for the min, max and mean of each channel per time bucket (about one
// bucket per pixel of track height) and draw the min/max band with the mean as a line, so a spike
// stays visible in a month of data. Rows that arrived live after the series was fetched are
// bucketed here on the same grid, so a live view keeps moving without asking again every second.

/** Bucket widths (seconds) the dashboard asks for: round numbers, so the grid stays put while the
 * view pans or follows live (the same buckets are asked for again, and nothing shimmers). */
const WIDTHS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
/** The API's limit on buckets per request. */
export const MAX_BUCKETS = 5000;

/** The narrowest round width that gives at most `rows` buckets across `span` seconds. */
export function bucketWidth(span, rows) {
  const raw = span / Math.max(1, rows);
  for (const w of WIDTHS) if (w >= raw) return w;
  return Math.ceil(raw / 86400) * 86400;
}

/**
 * What to ask for to show [min, max]: the visible range plus half of it on each side (a pan does
 * not need a new request), on the bucket grid, within what is stored, and only complete buckets
 * (the one still filling comes from the live rows). `bounds` is {first, last} in seconds, or null.
 */
export function planSeries(min, max, rows, now, bounds) {
  const span = max - min;
  const width = bucketWidth(span, rows);
  let start = Math.floor((min - span / 2) / width) * width;
  let end = Math.ceil((max + span / 2) / width) * width;
  if (bounds && bounds.first !== null) start = Math.max(start, Math.floor(bounds.first / width) * width);
  if (bounds && bounds.last !== null) end = Math.min(end, (Math.floor(bounds.last / width) + 1) * width);
  end = Math.min(end, Math.floor(now / width) * width);
  if ((end - start) / width > MAX_BUCKETS) start = end - MAX_BUCKETS * width;
  return { width, start, end, points: Math.round((end - start) / width) };
}

/** The response of /api/v1/data/series, on a dense grid of buckets [start, end). */
export class SeriesData {
  constructor(rig, plan, body, codes) {
    this.rig = rig;
    this.width = plan.width;
    this.start = plan.start;
    this.end = plan.end;
    this.size = plan.points;
    const n = this.size;
    this.present = new Uint8Array(n);
    this.cols = {};
    for (const code of codes) this.cols[code] = { avg: new Array(n).fill(null), min: new Array(n).fill(null), max: new Array(n).fill(null) };
    for (const s of body.series || []) {
      const col = this.cols[s.code];
      if (!col) continue;
      for (let i = 0; i < s.time.length; i += 1) {
        const k = Math.round((s.time[i] / 1e6 - this.start) / this.width);
        if (k < 0 || k >= n) continue;
        this.present[k] = 1;
        col.avg[k] = s.avg[i];
        col.min[k] = s.min[i];
        col.max[k] = s.max[i];
      }
    }
  }

  /**
   * True when these buckets can show [min, max] as `plan` would. Up to ten buckets (at most an
   * hour) after `end` may come from live rows instead; past that, newer buckets are asked for.
   */
  covers(plan, min) {
    const slack = Math.min(10 * this.width, 3600);
    return plan.width === this.width && this.start <= Math.max(min, plan.start) && this.end >= plan.end - slack;
  }

  /**
   * The drawable columns for [min, max]: per code the mean (line), min and max (band), at bucket
   * centres. `rows` (a RigData) adds the buckets after `end` from raw rows. A run of empty buckets
   * longer than three typical steps (a pause in the data) becomes a break, not a straight line.
   */
  frame(min, max, codes, rows) {
    const w = this.width;
    const first = Math.max(0, Math.floor((min - this.start) / w) - 1);
    const last = Math.ceil((max - this.start) / w) + 1;
    const keys = [];
    for (let k = first; k < Math.min(last, this.size); k += 1) if (this.present[k]) keys.push(k);
    const tail = rows ? this.tail(rows, Math.max(this.size, first), last, codes) : new Map();
    for (const k of [...tail.keys()].sort((a, b) => a - b)) keys.push(k);
    const steps = [];
    for (let i = 1; i < keys.length; i += 1) steps.push(keys[i] - keys[i - 1]);
    steps.sort((a, b) => a - b);
    const gap = Math.max(2, 3 * (steps[steps.length >> 1] || 1));
    const t = [];
    const line = Object.fromEntries(codes.map((c) => [c, []]));
    const lo = Object.fromEntries(codes.map((c) => [c, []]));
    const hi = Object.fromEntries(codes.map((c) => [c, []]));
    const add = (x, get) => {
      t.push(x);
      for (const c of codes) {
        const v = get(c);
        line[c].push(v ? v.avg : null);
        lo[c].push(v ? v.min : null);
        hi[c].push(v ? v.max : null);
      }
    };
    keys.forEach((k, i) => {
      if (i > 0 && k - keys[i - 1] > gap) add(this.start + (keys[i - 1] + 1) * w, () => null);
      const x = this.start + (k + 0.5) * w;
      if (k < this.size) {
        add(x, (c) => {
          const col = this.cols[c];
          return col ? { avg: col.avg[k], min: col.min[k], max: col.max[k] } : null;
        });
      } else {
        const bucket = tail.get(k);
        add(x, (c) => bucket[c] || null);
      }
    });
    return { t, line, lo, hi };
  }

  /** Buckets [from, to) of the grid computed from raw rows (live frames after the series). */
  tail(rows, from, to, codes) {
    const out = new Map();
    const w = this.width;
    const begin = this.start + from * w;
    for (let i = rows.indexAt(begin); i < rows.size; i += 1) {
      const k = Math.floor((rows.t[i] - this.start) / w);
      if (k >= to) break;
      let bucket = out.get(k);
      for (const c of codes) {
        const v = rows.cols[c][i];
        if (v === null || v === undefined) continue;
        if (!bucket) {
          bucket = {};
          out.set(k, bucket);
        }
        const b = bucket[c];
        if (!b) bucket[c] = { min: v, max: v, sum: v, n: 1, avg: v };
        else {
          b.min = Math.min(b.min, v);
          b.max = Math.max(b.max, v);
          b.sum += v;
          b.n += 1;
          b.avg = b.sum / b.n;
        }
      }
    }
    return out;
  }
}
