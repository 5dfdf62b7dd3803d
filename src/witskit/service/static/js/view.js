// The view window: which time range the tracks show, and how zoom, pan, the range buttons and
// "Go to" move it. A view is a plain value, {live, span, min, max}: a live view follows the
// present and shows the last `span` seconds (min and max unused), any other shows [min, max].
// Every function here takes a view and returns a new one; app.js holds the current view and
// applies what these return. No DOM, so `node --test` runs them (tests/dashboard/js/).
//
// `now` is the server's clock in seconds (session.now()); `bounds` is the rig's stored range,
// {first, last} in seconds (last may be null), or null while it is not known (rigs.js: rigBounds).

import { formatClock } from "./dom.js";
import { liveWindow } from "./scales.js";

/** Up to this span (seconds) the tracks draw every stored point; longer views draw buckets. */
export const RAW_SPAN = 2 * 3600;
/** The shortest view (seconds). */
export const MIN_SPAN = 60;
/** How far out one can zoom while the rig's stored range is not known yet. */
export const MAX_SPAN = 10 * 366 * 86400;
/** The longest span of the range buttons (12 h), which works whatever is stored. */
export const LONGEST_BUTTON = 12 * 3600;
/** The span of a first view, and of "Live" when no span was chosen yet. */
export const DEFAULT_SPAN = 3600;

/** A view following the present, `span` seconds long. */
export function liveView(span = DEFAULT_SPAN) {
  return { live: true, span, min: 0, max: 0 };
}

/**
 * The time range on screen. A live view is the last `span` seconds, or, for a rig whose first
 * frame is younger than that (a new feed), from its first frame on, so the data fills the track.
 */
export function currentWindow(view, now, bounds) {
  if (view.live) return liveWindow(now, view.span, bounds ? bounds.first : null);
  return [view.min, view.max];
}

/** True while a live view starts at the rig's first frame rather than `span` ago. */
export function startsAtFirstFrame(view, now, bounds) {
  return view.live && currentWindow(view, now, bounds)[0] > now - view.span;
}

/**
 * [min, max] kept sensible: at least MIN_SPAN, at most the rig's stored range (its first frame to
 * now, and a little; the range buttons always work), and never wholly before its first frame.
 */
export function clampWindow(min, max, now, bounds) {
  const longest = bounds ? Math.max(LONGEST_BUTTON, (now - bounds.first) * 1.05) : MAX_SPAN;
  const span = Math.min(longest, Math.max(MIN_SPAN, max - min));
  // A view that reaches the present keeps its end there (it follows live); any other its centre.
  let lo = max >= now - 1 ? max - span : (min + max) / 2 - span / 2;
  if (bounds && lo < bounds.first - span) lo = bounds.first - span;
  return [lo, lo + span];
}

/** The view of [min, max] (clamped); one that reaches the present follows it. */
export function windowView(min, max, now, bounds) {
  [min, max] = clampWindow(min, max, now, bounds);
  const span = max - min;
  // Reaching the present (to the second: the clock moved while this ran) means following it again.
  if (max >= now - 1) return liveView(Math.round(span));
  return { live: false, span, min, max };
}

/** Zoomed by `factor` (0.5: in, 2: out) about the time `at`, or about the middle of the view. */
export function zoomView(view, factor, at, now, bounds) {
  const [min, max] = currentWindow(view, now, bounds);
  const pivot = at ?? (min + max) / 2;
  if (view.live && at === undefined) {
    // From what is on screen: a new feed's view is shorter than its span.
    return windowView(now - Math.min(view.span, now - min) * factor, now, now, bounds);
  }
  return windowView(pivot - (pivot - min) * factor, pivot + (max - pivot) * factor, now, bounds);
}

/** Moved by half the view: `direction` -1 is earlier, 1 later. */
export function panView(view, direction, now, bounds) {
  const [min, max] = currentWindow(view, now, bounds);
  const step = (max - min) * 0.5 * direction;
  let end = max + step;
  // Earlier always leaves the present, even from a new feed's view (it reaches past now).
  if (direction < 0 && end >= now - 1) end = now - 2;
  return windowView(end - (max - min), end, now, bounds);
}

/** Following live, `span` seconds long (a range button), or as long as the view was ("Live"). */
export function followView(view, span, now, bounds) {
  const wanted = span || view.span || DEFAULT_SPAN;
  return windowView(now - wanted, now, now, bounds);
}

/** Everything stored for the rig, following live when its last frame is recent; null before the range is known. */
export function allView(view, now, bounds) {
  if (!bounds) return null;
  const last = bounds.last ?? now;
  const pad = Math.max(60, (last - bounds.first) * 0.02);
  if (now - last < 300) return followView(view, now - bounds.first + pad, now, bounds);
  return windowView(bounds.first - pad, last + pad, now, bounds);
}

/** "90 s", "15 min", "1.5 h", "3 d": a span, for the range line. */
export function formatSpan(seconds) {
  if (seconds >= 2 * 86400) return `${+(seconds / 86400).toFixed(1)} d`;
  if (seconds >= 3600) return `${+(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${+(seconds / 60).toFixed(1)} min`;
  return `${Math.round(seconds)} s`;
}

/**
 * The line beside the range buttons: what the view shows, or `message` (a load that failed), or
 * that stored data is loading. `bucket` is the width (seconds) of the buckets drawn, or null
 * while the tracks draw rows.
 */
export function rangeText(view, now, bounds, { loading = false, message = "", bucket = null } = {}) {
  let text;
  if (loading) text = "Loading stored data…";
  else if (message) text = message;
  else if (view.live && startsAtFirstFrame(view, now, bounds)) text = `Since the first frame at ${formatClock(bounds.first)}`;
  else if (view.live) text = `Last ${formatSpan(view.span)}, following live`;
  else if (view.span > 86400) text = `${new Date(view.min * 1000).toLocaleString()} – ${new Date(view.max * 1000).toLocaleString()}`;
  else text = `${new Date(view.min * 1000).toLocaleString()} – ${formatClock(view.max)}`;
  if (!loading && !message && view.span > RAW_SPAN && bucket !== null) text += ` · min–max per ${formatSpan(bucket)}`;
  return text;
}

/** `seconds` as a datetime-local input wants it (local time, to the minute). */
export function localInput(seconds) {
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
