// How one reading is shown, in a tile or a legend. A reading is a number, null (the rig sent a
// null), or text: a rig may send a value that does not fit its item's type (a date-time in a
// numeric item, `n/a`), and the service keeps it as text (docs/dashboard.md). Text comes from the
// rig, so it is only ever set with textContent (dom.js) and is cleaned of what could make it
// lie about what it says: control characters and bidirectional overrides.

/** Characters of a text reading shown in a tile or a legend; the whole text is in its title. */
export const TILE_TEXT = 24;
export const LEGEND_TEXT = 14;
/** Decimals at most for a decimal value of an integer item (`95.3` RPM), as the rig sent it. */
const MAX_SENT_DECIMALS = 3;

// C0 and C1 controls, and the marks that reorder text (U+200E/F, U+202A-E, U+2066-9).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A number kept as is, text kept as text, anything else (null, a non-finite number) null. */
export function readingOf(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string") return value;
  return null;
}

/** The text with controls and bidirectional marks shown as U+FFFD. */
export function cleanText(text) {
  return String(text).replace(UNSAFE, "\uFFFD");
}

/**
 * {text, title}: at most `max` characters (whole code points, an ellipsis when cut) and the full
 * text. A blank text says so, rather than leaving an empty tile that looks like a fault.
 */
export function shortText(text, max = TILE_TEXT) {
  const full = cleanText(text);
  if (!full.trim()) return { text: "(blank)", title: `"${full}"` };
  const chars = Array.from(full);
  const shown = chars.length > max ? `${chars.slice(0, max - 1).join("").trimEnd()}…` : full;
  return { text: shown, title: full };
}

/** The decimals `v` needs, up to MAX_SENT_DECIMALS (0 for 95, 1 for 95.3, 2 for 87.25). */
export function decimalsOf(v) {
  for (let d = 0; d < MAX_SENT_DECIMALS; d += 1) if (Number(v.toFixed(d)) === v) return d;
  return MAX_SENT_DECIMALS;
}

/**
 * A number to `digits` decimals (a size-based default when undefined), "—" for none. An integer
 * item (`integer`) is shown to 0 decimals, unless the rig sent a decimal: then as sent.
 */
export function formatValue(v, digits, integer = false) {
  if (v === null || v === undefined || typeof v !== "number" || !Number.isFinite(v)) return "—";
  let d = digits;
  if (d === undefined) {
    const a = Math.abs(v);
    d = a >= 1000 ? 0 : a >= 10 ? 1 : 2;
  }
  if (integer) d = Math.max(d, decimalsOf(v));
  return v.toLocaleString(undefined, { minimumFractionDigits: d, maximumFractionDigits: d });
}

/**
 * A reading as shown: {text, title, kind}. Numbers go through `convert` (units) and
 * formatValue; text is shortened to `max` with the whole of it as the title; kind is "number",
 * "text" or "none". `sent: false` for a number the rig did not send (a mean over a bucket or a
 * depth step): an integer item's mean is shown to the channel's decimals, not to three.
 */
export function formatReading(v, channel, { convert = (x) => x, max = TILE_TEXT, sent = true } = {}) {
  if (typeof v === "string") return { ...shortText(v, max), kind: "text" };
  if (typeof v !== "number" || !Number.isFinite(v)) return { text: "—", title: "", kind: "none" };
  const { digits, integer } = channel || {};
  return { text: formatValue(convert(v), digits, integer && sent), title: "", kind: "number" };
}

/**
 * The reading of a track's column at row `idx` (the cursor), or without one the newest row that
 * has a reading. `textAt(i)` gives the text reading of row i where the column has a gap (or
 * undefined); `null` when there is no text to look up (buckets).
 */
export function readingAt(column, textAt, idx) {
  const of = (i) => {
    const v = column[i];
    if (v !== null && v !== undefined) return v;
    return textAt ? textAt(i) ?? null : null;
  };
  if (idx !== null && idx !== undefined && idx >= 0 && idx < column.length) return of(idx);
  for (let i = column.length - 1; i >= 0; i -= 1) {
    const v = of(i);
    if (v !== null) return v;
  }
  return null;
}
