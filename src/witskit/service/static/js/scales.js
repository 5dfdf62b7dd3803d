// What the tracks' axes show: value ranges, tick positions and labels, and the live time window.
// Pure functions (no DOM, no uPlot), so `node --test` runs them (tests/dashboard/js/).

/**
 * The smallest span a value axis shows, by the unit on screen (the dictionary's unit string).
 * Without it an axis autoscales to the noise of a steady channel: rotary RPM wandering by 0.4 rpm
 * would fill the track from edge to edge. The spans are about what a driller notices on each
 * channel, and the same size in both systems (10 klbf is about 5 kdaN); docs/dashboard.md lists them.
 */
export const MIN_SPAN = Object.freeze({
  F: 10, // depth, ft
  M: 3, // depth, m
  "F/HR": 10, // ROP
  "M/HR": 3,
  KLB: 10, // hookload, WOB
  KDN: 5,
  LB: 1000,
  KFLB: 2, // torque
  KNM: 3,
  RPM: 10, // rotary speed
  SPM: 10, // pump strokes
  PSI: 100, // pressure
  KPA: 700,
  GPM: 50, // flow
  "L/M": 200,
  BBL: 10, // pit volume
  M3: 2,
  PPG: 0.5, // mud density
  KGM3: 60,
  DEGF: 5, // temperature
  DEGC: 3,
  IN: 1,
  MM: 25,
  "%": 5,
});

/** The smallest span for a unit (0: none known, the axis follows the data). */
export function minSpanFor(unit) {
  return unit && Object.hasOwn(MIN_SPAN, unit) ? MIN_SPAN[unit] : 0;
}

/**
 * The range of a value axis for data in [min, max]: at least `minSpan` wide (centred on the data,
 * and not below zero when the data is not), never empty (a flat line sits in the middle), with 6 %
 * of room on each side.
 */
export function valueRange(min, max, minSpan = 0) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  let lo = Math.min(min, max);
  let hi = Math.max(min, max);
  if (hi - lo < minSpan) {
    const mid = (lo + hi) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
    // A channel that is never negative (RPM standing at 0) gets no negative half from this.
    if (min >= 0 && lo < 0) {
      lo = 0;
      hi = minSpan;
    }
  } else if (hi === lo) {
    const pad = Math.abs(lo) * 0.05 || 1;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

// Ticks ---------------------------------------------------------------------------------------

/** Tick steps are 1, 2 and 5 times a power of ten (2.5 would give depths like "5997.5"). */
const MANTISSAS = [1, 2, 5];
/** Space (px) between neighbouring labels, so they never read as one number. */
export const LABEL_GAP = 10;

/** Decimals needed to write every multiple of `step` exactly (0.25 -> 2, 5 -> 0). */
export function decimalsFor(step) {
  for (let d = 0; d <= 12; d += 1) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) <= 1e-9 * Math.max(1, Math.abs(scaled))) return d;
  }
  return 12;
}

/**
 * A tick label: as many decimals as the step needs (so neighbours always differ), and with
 * `compact`, thousands as "k" where the step allows it (narrow tracks: "12.5k" for 12,500).
 */
export function formatTick(value, step, compact = false, magnitude = Math.abs(value)) {
  let text;
  if (compact && magnitude >= 10000 && step >= 100) text = `${(value / 1000).toFixed(decimalsFor(step / 1000))}k`;
  else text = value.toFixed(decimalsFor(step));
  // "-0" and "-0.0" are zero.
  return /^-0(\.0*)?k?$/.test(text) ? text.slice(1) : text;
}

function* steps(from) {
  let exp = Math.floor(Math.log10(from)) - 1;
  for (let n = 0; n < 400; n += 1, exp += 1) for (const m of MANTISSAS) yield m * 10 ** exp;
}

/**
 * Ticks for a value axis of `length` px showing [min, max]: the smallest round step whose labels
 * do not touch, the tick values, and their labels.
 *
 * - `measure(text)` is the size of a label along the axis in px: its width on a horizontal axis,
 *   its height (the font size) on a vertical one.
 * - `before` and `after` are the px available beyond each end of the axis (the canvas padding): a
 *   label that would stick out of the canvas is left blank ("") rather than drawn clipped; its
 *   tick and grid line stay.
 * - `compact`: thousands as "k" (narrow horizontal axes).
 *
 * Labels are distinct (as many decimals as the step needs) and never closer than LABEL_GAP px.
 */
export function axisTicks(min, max, length, { measure, before = 0, after = 0, compact = false, gap = LABEL_GAP } = {}) {
  const span = max - min;
  if (!Number.isFinite(span) || span <= 0 || !(length > 0)) return { step: 0, splits: [], labels: [] };
  const magnitude = Math.max(Math.abs(min), Math.abs(max));
  let chosen = null;
  for (const step of steps(span / Math.max(1, length))) {
    const px = (step * length) / span;
    if (px < 4) continue; // far too dense for any label: skip the arithmetic
    const first = Math.ceil(min / step - 1e-9);
    const last = Math.floor(max / step + 1e-9);
    const splits = [];
    for (let k = first; k <= last; k += 1) splits.push(Number((k * step).toFixed(decimalsFor(step))));
    const labels = splits.map((v) => formatTick(v, step, compact, magnitude));
    const widest = Math.max(0, ...labels.map(measure));
    chosen = { step, splits, labels };
    if (px >= widest + gap || splits.length <= 1) break;
  }
  const { step, splits } = chosen;
  const labels = chosen.labels.map((text, i) => {
    const at = ((splits[i] - min) / span) * length;
    const half = measure(text) / 2;
    return at - half < -before || at + half > length + after ? "" : text;
  });
  return { step, splits, labels };
}

/**
 * Labels of the time axis: hh:mm, with seconds when ticks are less than a minute apart, and the
 * date when they are a day apart or the view covers more than two days (local time). Decided by
 * the step between ticks, not by the span, so neighbours never read the same.
 */
export function timeLabels(splits, step, span) {
  const pad2 = (n) => String(n).padStart(2, "0");
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const date = `${d.getMonth() + 1}/${d.getDate()}`;
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    if (step >= 86400) return date;
    if (span > 2 * 86400) return `${date} ${hm}`;
    if (step < 60) return `${hm}:${pad2(d.getSeconds())}`;
    return hm;
  });
}

/**
 * Blanks the labels that would stick out of [lo, hi] (px along the axis): `at` is each label's
 * centre, `size` its size along the axis. Clipped text reads as another number ("1,2" of "1,250").
 */
export function fitLabels(labels, at, size, lo, hi) {
  return labels.map((text, i) => (text && (at[i] - size[i] / 2 < lo || at[i] + size[i] / 2 > hi) ? "" : text));
}

// The live window ----------------------------------------------------------------------------

/** The shortest live window shown for a feed younger than the span (seconds). */
export const MIN_LIVE_SPAN = 60;

/**
 * The time range of a live view of `span` seconds at `now`: the last `span` seconds, with a little
 * room after now. When the rig's first frame (`first`, seconds, or null when unknown) is younger
 * than that, the range starts at the first frame instead, so a new feed fills the track from the
 * top rather than being a sliver at the bottom of an hour; it is at least MIN_LIVE_SPAN long (the
 * first seconds of a feed are drawn from the top down, as a log is).
 */
export function liveWindow(now, span, first = null, minSpan = MIN_LIVE_SPAN) {
  let min = now - span;
  if (first !== null && first !== undefined && Number.isFinite(first) && first > min && first <= now) {
    const age = Math.max(minSpan, now - first);
    min = Math.max(min, first - age * 0.02); // a little room above the first frame
  }
  const ahead = Math.max(2, (now - min) * 0.01);
  return [min, Math.max(now + ahead, min + minSpan)];
}
