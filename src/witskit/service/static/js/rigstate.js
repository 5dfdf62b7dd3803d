// Rig state and KPIs for the dashboard, without the DOM (so `node --test` runs them,
// tests/dashboard/js/rigstate.test.mjs): the colour and name of each state, the segments of the
// state strip beside the tracks, the time breakdown and the connection-time histogram of the KPI
// panel, and the query of the analytics routes. panels.js draws them.

/** The states (the API's names) in legend order, with their label and colour. */
export const STATES = [
  { state: "rotary_drilling", label: "Rotary drilling", colour: "#2e9e44" },
  { state: "slide_drilling", label: "Slide drilling", colour: "#8bc34a" },
  { state: "reaming", label: "Reaming", colour: "#00a5b8" },
  { state: "back_reaming", label: "Back reaming", colour: "#3f6fd8" },
  { state: "circulating", label: "Circulating", colour: "#9c5fd0" },
  { state: "tripping_in", label: "Tripping in", colour: "#f0a020" },
  { state: "tripping_out", label: "Tripping out", colour: "#e0662a" },
  { state: "in_slips", label: "In slips", colour: "#d8c22a" },
  { state: "stationary", label: "Stationary", colour: "#8a8f98" },
  { state: "unknown", label: "Unknown", colour: "#4a4f58" },
];

const BY_STATE = new Map(STATES.map((s) => [s.state, s]));
const OTHER = { label: "Unknown", colour: "#4a4f58" };

/** The label and colour of a state (an unknown name is drawn as "unknown", never dropped). */
export function stateStyle(state) {
  const known = BY_STATE.get(state);
  return known ? { state, ...known } : { state, label: String(state || "unknown").replaceAll("_", " "), colour: OTHER.colour };
}

/**
 * The strip's segments: `intervals` (the route's, times ISO 8601) laid on a vertical strip
 * `pixels` high showing [min, max) (seconds; time grows downward as on the tracks). Each segment is
 * {state, colour, label, top, height, start, end} in pixels and seconds; segments thinner than
 * `minPixels` are merged into their neighbour of the same state or dropped when alone, so a
 * month of states draws a few hundred rectangles, not tens of thousands.
 */
export function stripSegments(intervals, min, max, pixels, minPixels = 1) {
  const out = [];
  if (!(max > min) || !(pixels > 0)) return out;
  const scale = pixels / (max - min);
  for (const it of intervals || []) {
    const start = Math.max(min, Date.parse(it.start) / 1000);
    const end = Math.min(max, Date.parse(it.end) / 1000);
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start || end <= min || start >= max) continue;
    const top = (start - min) * scale;
    const bottom = Math.max((end - min) * scale, top + 0.0001);
    const last = out[out.length - 1];
    if (last && last.state === it.state && top - (last.top + last.height) < minPixels) {
      last.height = bottom - last.top;
      last.end = end;
      continue;
    }
    const { colour, label } = stateStyle(it.state);
    out.push({ state: it.state, colour, label, top, height: bottom - top, start, end });
  }
  return out.filter((s) => s.height >= minPixels || out.length === 1);
}

/** The state at time `t` (seconds) in the intervals, or null. */
export function stateAt(intervals, t) {
  for (const it of intervals || []) {
    if (Date.parse(it.start) / 1000 <= t && t <= Date.parse(it.end) / 1000) return it.state;
  }
  return null;
}

/** The rig picker's line: "Rotary drilling · 12 min" (since when), or "" without a state. */
export function currentStateText(source, now, formatAge) {
  if (!source || !source.rig_state) return "";
  const { label } = stateStyle(source.rig_state);
  const since = source.rig_state_since ? Date.parse(source.rig_state_since) / 1000 : NaN;
  return Number.isFinite(since) ? `${label} · ${formatAge(Math.max(0, now - since))}` : label;
}

/**
 * The time breakdown of a KPI report's `hours` ({state: hours}): rows {state, label, colour,
 * hours, share} with the largest first; share is of the total (0 when there is none).
 */
export function timeBreakdown(hours) {
  const rows = Object.entries(hours || {})
    .filter(([, h]) => Number.isFinite(h) && h > 0)
    .map(([state, h]) => ({ ...stateStyle(state), hours: h }));
  const total = rows.reduce((sum, r) => sum + r.hours, 0);
  for (const r of rows) r.share = total ? r.hours / total : 0;
  return rows.sort((a, b) => b.hours - a.hours || a.state.localeCompare(b.state));
}

/**
 * A histogram of connection times (seconds): bins of `width` seconds from 0, the last one open
 * ("≥ N"); at most `maxBins` bins. Returns [{from, to, count}] (to is Infinity for the open bin).
 */
export function histogram(seconds, width = 60, maxBins = 10) {
  const bins = [];
  const values = (seconds || []).filter((s) => Number.isFinite(s) && s >= 0);
  if (!values.length || !(width > 0)) return bins;
  const top = Math.max(...values);
  const count = Math.min(maxBins, Math.floor(top / width) + 1);
  for (let k = 0; k < count; k += 1) bins.push({ from: k * width, to: k === count - 1 && count === maxBins ? Infinity : (k + 1) * width, count: 0 });
  for (const v of values) bins[Math.min(count - 1, Math.floor(v / width))].count += 1;
  return bins;
}

/** The connections' slips-to-slips times (seconds) of a KPI report's range. */
export function connectionTimes(report) {
  const list = report && report.total && report.total.connections ? report.total.connections.list : [];
  return (list || []).map((c) => c.slips_to_slips_s ?? (Date.parse(c.slips_out) - Date.parse(c.slips_set)) / 1000);
}

/** The longest range the analytics routes take (seconds): 7 days. */
export const MAX_ANALYSIS_SPAN = 7 * 86400;

/**
 * The query of an analytics route for the window [min, max) (seconds): the window, or its last
 * 7 days when it is longer (the routes refuse more), times in ISO 8601 UTC.
 */
export function analysisQuery(source, min, max) {
  const end = Math.ceil(max);
  const start = Math.max(Math.floor(min), end - MAX_ANALYSIS_SPAN);
  return { source, start: new Date(start * 1000).toISOString(), end: new Date(end * 1000).toISOString() };
}
