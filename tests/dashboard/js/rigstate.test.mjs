// The rig state strip, the picker's state line and the KPI panel's figures (static/js/rigstate.js),
// under `node --test`. The DOM part (panels.js) is covered by the browser tests.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import {
  STATES,
  analysisQuery,
  connectionTimes,
  currentStateText,
  histogram,
  stateAt,
  stateStyle,
  stripSegments,
  timeBreakdown,
} from "../../../src/witskit/service/static/js/rigstate.js";

const T0 = 1_800_000_000;
const iso = (seconds) => new Date(seconds * 1000).toISOString();
const interval = (from, to, state) => ({ start: iso(T0 + from), end: iso(T0 + to), state });

test("every state of the API's vocabulary has its own label and colour", () => {
  const names = STATES.map((s) => s.state);
  assert.deepEqual(names, [
    "rotary_drilling", "slide_drilling", "reaming", "back_reaming", "circulating",
    "tripping_in", "tripping_out", "in_slips", "stationary", "unknown",
  ]);
  assert.equal(new Set(STATES.map((s) => s.colour)).size, STATES.length);
  assert.equal(stateStyle("in_slips").label, "In slips");
  // A state added to the API later is drawn, grey, with its name readable.
  assert.deepEqual(
    { label: stateStyle("wiper_trip").label, colour: stateStyle("wiper_trip").colour },
    { label: "wiper trip", colour: stateStyle("unknown").colour },
  );
});

test("intervals become segments of the strip, clipped to the window, time growing downward", () => {
  const intervals = [interval(-100, 50, "in_slips"), interval(50, 250, "rotary_drilling"), interval(250, 600, "tripping_out")];
  const segs = stripSegments(intervals, T0, T0 + 400, 800);
  assert.deepEqual(
    segs.map((s) => [s.state, s.top, s.height]),
    [
      ["in_slips", 0, 100],
      ["rotary_drilling", 100, 400],
      ["tripping_out", 500, 300],
    ],
  );
  assert.equal(segs[0].colour, stateStyle("in_slips").colour);
  assert.equal(segs[2].end, T0 + 400);
  assert.deepEqual(stripSegments(intervals, T0 + 1000, T0 + 2000, 800), []);
  assert.deepEqual(stripSegments(intervals, T0, T0, 800), []);
  assert.deepEqual(stripSegments(intervals, T0, T0 + 10, 0), []);
});

test("a month of short states draws a few segments: thin ones merge with their state or drop", () => {
  const intervals = [];
  // 30 days of one-minute alternations on a 300-pixel strip: 43,200 intervals, ~0.007 px each.
  for (let k = 0; k < 43_200; k += 1) intervals.push(interval(k * 60, (k + 1) * 60, k % 2 ? "rotary_drilling" : "in_slips"));
  const segs = stripSegments(intervals, T0, T0 + 30 * 86400, 300);
  assert.ok(segs.length <= 300, `${segs.length} segments`);
  // A long state among them stays.
  const mixed = [interval(0, 86400, "tripping_in"), ...intervals.slice(1440)];
  const top = stripSegments(mixed, T0, T0 + 30 * 86400, 300)[0];
  assert.equal(top.state, "tripping_in");
  assert.equal(Math.round(top.height), 10);
});

test("segments next to each other of the same state join across a sub-pixel hole", () => {
  const segs = stripSegments([interval(0, 100, "circulating"), interval(100.1, 200, "circulating")], T0, T0 + 200, 100);
  assert.equal(segs.length, 1);
  assert.equal(segs[0].height, 100);
});

test("the state at a time, and the rig picker's line", () => {
  const intervals = [interval(0, 10, "stationary"), interval(10, 20, "reaming")];
  assert.equal(stateAt(intervals, T0 + 15), "reaming");
  assert.equal(stateAt(intervals, T0 + 25), null);
  const age = (s) => `${Math.round(s)} s`;
  assert.equal(currentStateText({ rig_state: "back_reaming", rig_state_since: iso(T0) }, T0 + 42, age), "Back reaming · 42 s");
  assert.equal(currentStateText({ rig_state: "circulating" }, T0, age), "Circulating");
  assert.equal(currentStateText({ rig_state: null }, T0, age), "");
  assert.equal(currentStateText(undefined, T0, age), "");
});

test("the time breakdown lists the states by hours, with their share", () => {
  const rows = timeBreakdown({ rotary_drilling: 6, in_slips: 1.5, tripping_out: 2.5, circulating: 0, unknown: null });
  assert.deepEqual(rows.map((r) => [r.state, r.hours, r.share]), [
    ["rotary_drilling", 6, 0.6],
    ["tripping_out", 2.5, 0.25],
    ["in_slips", 1.5, 0.15],
  ]);
  assert.deepEqual(timeBreakdown({}), []);
  assert.deepEqual(timeBreakdown(undefined), []);
});

test("connection times fall in one-minute bins, the last one open", () => {
  assert.deepEqual(
    histogram([30, 59, 60, 150, 179.9], 60).map((b) => [b.from, b.to, b.count]),
    [
      [0, 60, 2],
      [60, 120, 1],
      [120, 180, 2],
    ],
  );
  const open = histogram([10, 3000], 60, 4);
  assert.deepEqual(open.map((b) => [b.from, b.to, b.count]), [
    [0, 60, 1],
    [60, 120, 0],
    [120, 180, 0],
    [180, Infinity, 1],
  ]);
  assert.deepEqual(histogram([], 60), []);
  assert.deepEqual(histogram([NaN, -1], 60), []);
});

test("the KPI report's connections give their slips-to-slips times", () => {
  const report = {
    total: {
      connections: {
        list: [
          { slips_set: iso(T0), slips_out: iso(T0 + 95), slips_to_slips_s: 95 },
          { slips_set: iso(T0), slips_out: iso(T0 + 130) },
        ],
      },
    },
  };
  assert.deepEqual(connectionTimes(report), [95, 130]);
  assert.deepEqual(connectionTimes({}), []);
});

test("the routes are asked for the window, or its last 7 days when it is longer", () => {
  assert.deepEqual(analysisQuery("rig-1", T0, T0 + 3600), { source: "rig-1", start: iso(T0), end: iso(T0 + 3600) });
  const month = analysisQuery("rig-1", T0, T0 + 30 * 86400);
  assert.equal((Date.parse(month.end) - Date.parse(month.start)) / 1000, 7 * 86400);
  assert.equal(month.end, iso(T0 + 30 * 86400));
});
