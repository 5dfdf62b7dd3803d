// The pure parts of the dashboard's axes (static/js/scales.js), under `node --test`.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import {
  MIN_LIVE_SPAN,
  MIN_SPAN,
  axisTicks,
  decimalsFor,
  fitLabels,
  formatTick,
  liveWindow,
  minSpanFor,
  timeLabels,
  valueRange,
} from "../../../src/witskit/service/static/js/scales.js";

/** About the width of a 12 px system font's digits, as a horizontal axis needs them. */
const measure = (text) => text.length * 7;

function assertDistinct(labels) {
  const shown = labels.filter((l) => l !== "");
  assert.deepEqual(shown, [...new Set(shown)], `labels repeat: ${labels.join(" ")}`);
}

test("a track with little range gets distinct labels with the decimals it needs", () => {
  // The bug: hookload between 204.1 and 205.3 on a narrow track read "204 204 205".
  const { step, labels, splits } = axisTicks(204.1, 205.3, 140, { measure });
  assertDistinct(labels);
  assert.ok(labels.filter(Boolean).length >= 2, labels.join(" "));
  assert.ok(step < 1, `step ${step}`);
  for (const [i, text] of labels.entries()) if (text) assert.equal(Number(text), splits[i]);
});

test("labels are as far apart as they are wide, and none sticks out of the axis", () => {
  for (const [min, max, length] of [
    [0, 3000, 120],
    [6040.3, 6091.7, 150],
    [-1.2, 0.8, 90],
    [12000, 12650, 110],
    [0.001, 0.0042, 100],
    [774.2, 775.9, 300],
  ]) {
    const { splits, labels } = axisTicks(min, max, length, { measure });
    assertDistinct(labels);
    const boxes = labels
      .map((text, i) => ({ text, at: ((splits[i] - min) / (max - min)) * length }))
      .filter((b) => b.text);
    assert.ok(boxes.length >= 1, `no label at all for [${min}, ${max}] in ${length} px`);
    for (const b of boxes) {
      assert.ok(b.at - measure(b.text) / 2 >= 0 && b.at + measure(b.text) / 2 <= length, `${b.text} is clipped`);
    }
    for (let i = 1; i < boxes.length; i += 1) {
      const room = boxes[i].at - boxes[i - 1].at;
      assert.ok(room >= (measure(boxes[i].text) + measure(boxes[i - 1].text)) / 2 + 8, `${boxes[i - 1].text} touches ${boxes[i].text}`);
    }
  }
});

test("room beyond the ends of the axis lets the end labels show", () => {
  const tight = axisTicks(0, 100, 100, { measure });
  const roomy = axisTicks(0, 100, 100, { measure, before: 20, after: 20 });
  assert.equal(tight.labels[0], "", "0 would be half outside the canvas");
  assert.equal(roomy.labels[0], "0");
});

test("tick formatting: decimals from the step, thousands compact only when asked", () => {
  assert.equal(decimalsFor(5), 0);
  assert.equal(decimalsFor(0.25), 2);
  assert.equal(decimalsFor(0.1), 1);
  assert.equal(decimalsFor(2.5e-3), 4);
  assert.equal(formatTick(204.2, 0.2), "204.2");
  assert.equal(formatTick(205, 0.2), "205.0");
  assert.equal(formatTick(12500, 500, true), "12.5k");
  assert.equal(formatTick(12000, 1000, true), "12k");
  assert.equal(formatTick(12050, 50, true), "12050", "a step below 100 keeps every digit");
  assert.equal(formatTick(12500, 500), "12500");
  assert.equal(formatTick(-0.0000001, 0.5), "0.0");
});

test("noisy channels get a minimum span by unit: RPM does not autoscale to its noise", () => {
  assert.equal(minSpanFor("RPM"), 10);
  assert.equal(minSpanFor("F"), 10);
  assert.equal(minSpanFor("PSI"), 100);
  assert.equal(minSpanFor("no such unit"), 0);
  assert.equal(minSpanFor(undefined), 0);
  const [lo, hi] = valueRange(119.6, 120.4, minSpanFor("RPM"));
  assert.ok(hi - lo >= 10, `${lo}..${hi}`);
  assert.ok(lo < 119.6 && hi > 120.4);
  assert.ok(Math.abs((lo + hi) / 2 - 120) < 1e-9, "centred on the data");
  // A channel at rest at zero is not given a negative half.
  const [zlo, zhi] = valueRange(0, 0, minSpanFor("RPM"));
  assert.ok(zlo >= -1 && zhi >= 10, `${zlo}..${zhi}`);
  // A range wider than the minimum is the data's, with a little room.
  const [wlo, whi] = valueRange(0, 140, 10);
  assert.ok(wlo < 0 && wlo > -10 && whi > 140 && whi < 150);
  // No data, or a flat line with no known unit: never an empty range.
  assert.deepEqual(valueRange(null, null), [0, 1]);
  const [flo, fhi] = valueRange(50, 50);
  assert.ok(fhi > flo);
  // Each metric span is about its FPS counterpart (same look after switching units).
  for (const [fps, metric, factor] of [["KLB", "KDN", 0.4448], ["PSI", "KPA", 6.895], ["GPM", "L/M", 3.785], ["BBL", "M3", 0.159], ["F", "M", 0.3048]]) {
    const ratio = MIN_SPAN[metric] / (MIN_SPAN[fps] * factor);
    assert.ok(ratio > 0.5 && ratio < 2, `${fps} ${MIN_SPAN[fps]} vs ${metric} ${MIN_SPAN[metric]}`);
  }
});

test("a feed younger than the live window fills it: the time axis starts at the data", () => {
  const now = 1_800_000_000;
  // The bug: a new demo's first minute was a sliver at the bottom of an hour.
  const [min, max] = liveWindow(now, 3600, now - 90);
  assert.ok(min <= now - 90 && min > now - 95, `starts at the first frame, not ${now - min} s ago`);
  assert.ok(max > now && max - now <= 5);
  // Its first seconds: the axis starts at the first frame and spans MIN_LIVE_SPAN, so the feed
  // is drawn from the top down.
  const [smin, smax] = liveWindow(now, 3600, now - 3);
  assert.ok(smin <= now - 3 && smin > now - 5, `${now - smin}`);
  assert.ok(smax - smin >= MIN_LIVE_SPAN && smax - smin < MIN_LIVE_SPAN * 1.1);
  // Older data, none known, or a first frame from the future (a clock ahead): the whole span.
  assert.deepEqual(liveWindow(now, 3600, now - 7200), [now - 3600, now + 36]);
  assert.deepEqual(liveWindow(now, 3600, null), [now - 3600, now + 36]);
  assert.deepEqual(liveWindow(now, 3600, now + 50), [now - 3600, now + 36]);
  // A short span is never stretched to reach the first frame.
  assert.deepEqual(liveWindow(now, 900, now - 1000), [now - 900, now + 9]);
});

test("time labels: seconds when ticks are under a minute apart, whatever the span", () => {
  const t0 = Date.UTC(2026, 0, 5, 7, 40, 0) / 1000;
  // 30 s apart over 11 minutes: without seconds these read "07:40 07:40 07:41".
  assert.deepEqual(timeLabels([t0, t0 + 30, t0 + 60], 30, 660), ["07:40:00", "07:40:30", "07:41:00"]);
  assert.deepEqual(timeLabels([t0, t0 + 600], 600, 3600), ["07:40", "07:50"]);
  assert.deepEqual(timeLabels([t0, t0 + 43200], 43200, 4 * 86400), ["1/5 07:40", "1/5 19:40"]);
  assert.deepEqual(timeLabels([t0, t0 + 86400], 86400, 9 * 86400), ["1/5", "1/6"]);
});

test("labels that would be clipped at the ends are blanked", () => {
  assert.deepEqual(fitLabels(["07:40", "07:50", "08:00"], [2, 100, 199], [12, 12, 12], 0, 200), ["", "07:50", ""]);
  assert.deepEqual(fitLabels(["a", "", "c"], [50, 60, 70], [10, 10, 10], 0, 200), ["a", "", "c"]);
});

test("docs/dashboard.md lists the minimum spans as they are", () => {
  const docs = readFileSync(new URL("../../../docs/dashboard.md", import.meta.url), "utf-8");
  const listed = {};
  for (const line of docs.split("\n")) {
    // | `F` (ft, depth) | 10 | `M` (m) | 3 |
    const cells = line.trim().split("|").slice(1, -1).map((c) => c.trim());
    for (let i = 0; i + 1 < cells.length; i += 2) {
      const unit = /^`([^`]+)`/.exec(cells[i]);
      if (unit && /^[\d.]+$/.test(cells[i + 1])) listed[unit[1]] = Number(cells[i + 1]);
    }
  }
  assert.deepEqual(listed, { ...MIN_SPAN });
});
