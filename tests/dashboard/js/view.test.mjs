// The view window (static/js/view.js): zoom, pan, the range buttons and "Go to", under `node --test`.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import {
  DEFAULT_SPAN,
  LONGEST_BUTTON,
  MAX_SPAN,
  MIN_SPAN,
  RAW_SPAN,
  allView,
  clampWindow,
  currentWindow,
  followView,
  formatSpan,
  liveView,
  localInput,
  panView,
  rangeText,
  startsAtFirstFrame,
  windowView,
  zoomView,
} from "../../../src/witskit/service/static/js/view.js";

const now = 1_800_000_000;
/** A rig with a day stored, its last frame a second ago. */
const day = { first: now - 86400, last: now - 1 };

test("a first view follows live for an hour", () => {
  assert.deepEqual(liveView(), { live: true, span: DEFAULT_SPAN, min: 0, max: 0 });
  assert.deepEqual(currentWindow(liveView(), now, day), [now - 3600, now + 36]);
});

test("a window that reaches the present follows it; one in the past stays put", () => {
  assert.deepEqual(windowView(now - 900.4, now, now, day), liveView(900));
  // To the second: the clock moved on while the window was picked.
  assert.equal(windowView(now - 900, now - 1, now, day).live, true);
  const past = windowView(now - 7200, now - 3600, now, day);
  assert.deepEqual(past, { live: false, span: 3600, min: now - 7200, max: now - 3600 });
  assert.deepEqual(currentWindow(past, now, day), [now - 7200, now - 3600]);
});

test("a window is at least MIN_SPAN long, about its centre", () => {
  const view = windowView(now - 5000, now - 4990, now, day);
  assert.equal(view.span, MIN_SPAN);
  assert.equal((view.min + view.max) / 2, now - 4995);
});

test("a window is at most the stored range (or the longest button), and never wholly before it", () => {
  const [lo, hi] = clampWindow(now - 30 * 86400, now, now, day);
  assert.equal(hi - lo, 86400 * 1.05);
  const young = { first: now - 600, last: now };
  const [ylo, yhi] = clampWindow(now - 86400, now, now, young);
  assert.equal(yhi - ylo, LONGEST_BUTTON);
  // Dragged to long before the first frame: it ends at the first frame.
  const [plo, phi] = clampWindow(now - 10 * 86400, now - 9 * 86400, now, day);
  assert.equal(phi, day.first);
  assert.equal(phi - plo, 86400);
  // While the range is not known, out to MAX_SPAN.
  const [ulo, uhi] = clampWindow(0, now, now, null);
  assert.equal(uhi - ulo, MAX_SPAN);
});

test("zooming a live view keeps following live, from what is on screen", () => {
  assert.deepEqual(zoomView(liveView(3600), 0.5, undefined, now, day), liveView(1800));
  assert.deepEqual(zoomView(liveView(3600), 2, undefined, now, day), liveView(7200));
  // A feed 10 minutes old shows those 10 minutes, not the hour asked for: zooming in halves them.
  const young = { first: now - 600, last: now };
  const [min] = currentWindow(liveView(3600), now, young);
  assert.ok(min > now - 700 && min < now - 600, `${min - now}`);
  assert.equal(zoomView(liveView(3600), 0.5, undefined, now, young).span, Math.round((now - min) / 2));
});

test("zooming about a time (the wheel) keeps that time where it was", () => {
  const view = windowView(now - 7200, now - 3600, now, day);
  const at = now - 6300; // a quarter down the window
  const zoomed = zoomView(view, 0.5, at, now, day);
  assert.equal(zoomed.live, false);
  assert.equal(zoomed.span, 1800);
  assert.equal((at - zoomed.min) / zoomed.span, (at - view.min) / view.span);
});

test("panning moves half a window; earlier always leaves the present, later comes back to it", () => {
  const earlier = panView(liveView(3600), -1, now, day);
  assert.equal(earlier.live, false);
  const [min, max] = currentWindow(liveView(3600), now, day);
  assert.equal(earlier.max, max - (max - min) / 2);
  assert.equal(earlier.span, max - min);
  const back = panView(earlier, 1, now, day);
  assert.equal(back.live, true);
  // A feed 10 s old is drawn from the top of a minute that reaches well past now: half of it
  // earlier still ends after now, yet earlier always leaves the present.
  const young = { first: now - 10, last: now };
  assert.ok(currentWindow(liveView(3600), now, young)[1] - 30 > now);
  const fromYoung = panView(liveView(3600), -1, now, young);
  assert.equal(fromYoung.live, false);
  assert.equal(fromYoung.max, now - 2);
});

test("the range buttons follow live at their span; Live keeps the span on screen", () => {
  assert.deepEqual(followView(liveView(3600), 900, now, day), liveView(900));
  const past = windowView(now - 7200, now - 5400, now, day);
  assert.deepEqual(followView(past, undefined, now, day), liveView(1800));
  assert.deepEqual(followView({ live: false, span: 0, min: 0, max: 0 }, undefined, now, day), liveView(DEFAULT_SPAN));
});

test("All shows everything stored: live when the rig is sending, else the stored range", () => {
  assert.equal(allView(liveView(), now, null), null);
  const live = allView(liveView(), now, day);
  assert.equal(live.live, true);
  assert.equal(live.span, Math.round(86400 + (day.last - day.first) * 0.02));
  const old = { first: now - 10 * 86400, last: now - 5 * 86400 };
  const still = allView(liveView(), now, old);
  const pad = 5 * 86400 * 0.02;
  assert.deepEqual(still, { live: false, span: 5 * 86400 + 2 * pad, min: old.first - pad, max: old.last + pad });
});

test("a live view of a new feed starts at its first frame", () => {
  assert.equal(startsAtFirstFrame(liveView(3600), now, { first: now - 600, last: now }), true);
  assert.equal(startsAtFirstFrame(liveView(3600), now, day), false);
  assert.equal(startsAtFirstFrame(liveView(3600), now, null), false);
  assert.equal(startsAtFirstFrame(windowView(now - 7200, now - 3600, now, day), now, day), false);
});

test("the range line says what is shown, loading, or what went wrong", () => {
  assert.equal(rangeText(liveView(3600), now, day), "Last 1 h, following live");
  assert.equal(rangeText(liveView(900), now, day, { loading: true }), "Loading stored data…");
  assert.equal(rangeText(liveView(900), now, day, { message: "Pick a start before the end." }), "Pick a start before the end.");
  const first = now - 600;
  assert.equal(rangeText(liveView(3600), now, { first, last: now }), `Since the first frame at ${new Date(first * 1000).toLocaleTimeString([], { hour12: false })}`);
  // Buckets are named only past RAW_SPAN, and not over a message.
  assert.equal(rangeText(liveView(RAW_SPAN * 3), now, day, { bucket: 30 }), "Last 6 h, following live · min–max per 30 s");
  assert.equal(rangeText(liveView(RAW_SPAN), now, day, { bucket: 30 }), "Last 2 h, following live");
  assert.equal(rangeText(liveView(RAW_SPAN * 3), now, day, { bucket: 30, message: "x" }), "x");
  const past = windowView(now - 7200, now - 3600, now, day);
  assert.match(rangeText(past, now, day), / – \d\d:\d\d:\d\d$/);
});

test("spans and datetime-local values read as people write them", () => {
  assert.deepEqual([45, 90, 900, 3600, 5400, 86400, 2 * 86400, 3.5 * 86400].map(formatSpan), [
    "45 s",
    "1.5 min",
    "15 min",
    "1 h",
    "1.5 h",
    "24 h",
    "2 d",
    "3.5 d",
  ]);
  // TZ=UTC (the pytest wrapper sets it).
  assert.equal(localInput(Date.UTC(2026, 11, 3, 8, 5, 59) / 1000), "2026-12-03T08:05");
});
