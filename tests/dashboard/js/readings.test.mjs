// Readings that do not fit their item's type (issue 10): text in a numeric item, a decimal in an
// integer item, as the tiles and legends show them (static/js/readings.js) and as the store keeps
// them (static/js/store.js). The browser test (test_dashboard_browser.py) checks the page.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import {
  LEGEND_TEXT,
  TILE_TEXT,
  cleanText,
  decimalsOf,
  formatReading,
  formatValue,
  readingAt,
  readingOf,
  shortText,
} from "../../../src/witskit/service/static/js/readings.js";
import { CHANNEL_OF, RigData } from "../../../src/witskit/service/static/js/store.js";

const RPM = CHANNEL_OF["0120"];
const SPP = CHANNEL_OF["0121"];
const MARKUP = '<img src=x onerror="alert(1)">';
const iso = (seconds) => new Date(seconds * 1000).toISOString();
const t0 = 1_800_000_000;

test("a decimal in an integer item is shown as sent, a float item to its decimals", () => {
  assert.equal(RPM.integer, true);
  assert.equal(formatReading(95, RPM).text, "95");
  assert.equal(formatReading(95.3, RPM).text, "95.3");
  assert.equal(formatReading(87.25, RPM).text, "87.25");
  assert.equal(formatReading(1 / 3, RPM).text, "0.333");
  // A mean over a bucket is not a value the rig sent: the channel's decimals.
  assert.equal(formatReading(95.4667, RPM, { sent: false }).text, "95");
  // A float item keeps the decimals a driller reads it to.
  assert.equal(formatReading(2345.67, SPP).text, "2,346");
  assert.deepEqual([decimalsOf(30), decimalsOf(30.22), decimalsOf(1.06), decimalsOf(0.1 + 0.2)], [0, 2, 2, 3]);
  assert.equal(formatValue(null, 1), "—");
  assert.equal(formatValue(Number.NaN, 1), "—");
  assert.equal(formatValue(12.345), "12.3");
});

test("a text reading is shown as text, shortened, the whole of it in the title", () => {
  const short = formatReading("n/a", SPP);
  assert.deepEqual(short, { text: "n/a", title: "n/a", kind: "text" });
  const markup = formatReading(MARKUP, SPP);
  assert.equal(markup.kind, "text");
  assert.equal(markup.title, MARKUP);
  assert.equal(Array.from(markup.text).length, TILE_TEXT);
  assert.ok(markup.text.endsWith("…") && MARKUP.startsWith(markup.text.slice(0, -1)));
  assert.equal(Array.from(formatReading("2026-03-15 09:30:15", SPP, { max: LEGEND_TEXT }).text).length, LEGEND_TEXT);
  // Whole code points: an emoji is never cut in half.
  assert.equal(shortText("😀".repeat(30), 5).text, "😀😀😀😀…");
  // A number in the text is not converted: the unit does not apply to it.
  assert.equal(formatReading("12", SPP, { convert: (v) => v * 6.894757 }).text, "12");
  assert.deepEqual(formatReading(null, SPP), { text: "—", title: "", kind: "none" });
  assert.deepEqual(formatReading(" ", SPP), { text: "(blank)", title: '" "', kind: "text" });
});

test("controls and bidirectional overrides in a text reading are shown as U+FFFD", () => {
  assert.equal(cleanText("ab\u202Ecd\u0007\u2066e"), "ab\uFFFDcd\uFFFD\uFFFDe");
  assert.equal(shortText("a\u202Eb").title, "a\uFFFDb");
});

test("what the service sends becomes a number, a text or a null", () => {
  assert.equal(readingOf(95.3), 95.3);
  assert.equal(readingOf("n/a"), "n/a");
  assert.equal(readingOf(""), "");
  assert.equal(readingOf(null), null);
  assert.equal(readingOf(undefined), null);
  assert.equal(readingOf(Infinity), null);
  assert.equal(readingOf({ value: 1 }), null);
});

test("a legend shows the reading at the cursor, or the newest one, text included", () => {
  const column = [1, null, null, 4, null];
  const texts = { 2: "n/a", 4: "ERR" };
  const textAt = (i) => texts[i];
  assert.equal(readingAt(column, textAt, null), "ERR");
  assert.equal(readingAt(column, textAt, 2), "n/a");
  assert.equal(readingAt(column, textAt, 1), null);
  assert.equal(readingAt(column, textAt, 3), 4);
  assert.equal(readingAt(column, null, null), 4);
  assert.equal(readingAt(column, textAt, 99), "ERR");
  assert.equal(readingAt([], null, null), null);
});

test("live frames: a text reading is a gap in the column, kept beside it, and the latest", () => {
  const rig = new RigData("rig-1");
  const frame = (t, points) => ({ source: "rig-1", timestamp: iso(t), points, errors: [] });
  rig.addFrame(frame(t0, [{ code: "0121", value: 2100, unit: "PSI" }, { code: "0120", value: 95, unit: "RPM" }]));
  rig.addFrame(frame(t0 + 1, [{ code: "0121", value: MARKUP, unit: "PSI" }, { code: "0120", value: 95.3, unit: "RPM" }]));
  rig.addFrame(frame(t0 + 2, [{ code: "0121", value: null, unit: "PSI" }]));
  assert.deepEqual(rig.cols["0121"], [2100, null, null]);
  assert.deepEqual(rig.cols["0120"], [95, 95.3, null]);
  assert.equal(rig.textAt("0121", 1), MARKUP);
  assert.equal(rig.textAt("0121", 2), undefined);
  assert.equal(rig.textAt("0120", 1), undefined);
  // A text reading is not a null reading; the rig's null at t0+2 is.
  assert.deepEqual(rig.nulls, [0, 0, 1]);
  assert.deepEqual(rig.latest["0121"], { v: null, t: t0 + 2 });
  assert.deepEqual(rig.latest["0120"], { v: 95.3, t: t0 + 1 });
  rig.addFrame(frame(t0 + 3, [{ code: "0121", value: "n/a", unit: "PSI" }]));
  assert.deepEqual(rig.latest["0121"], { v: "n/a", t: t0 + 3 });
});

test("stored rows: text readings survive a merge with live rows and go with trimmed rows", () => {
  const rig = new RigData("rig-1");
  // Live rows first, then the history before and around them.
  rig.addFrame({ timestamp: iso(t0 + 10), points: [{ code: "0121", value: "ERR" }], errors: [] });
  rig.addRows([
    { time: iso(t0), code: "0121", value: 2000 },
    { time: iso(t0 + 5), code: "0121", value: "2026-03-15T09:30:15" },
    { time: iso(t0 + 5), code: "0120", value: 95.3 },
    { time: iso(t0 + 10), code: "0120", value: 120 },
  ]);
  assert.deepEqual(rig.t, [t0, t0 + 5, t0 + 10]);
  assert.deepEqual(rig.cols["0121"], [2000, null, null]);
  assert.equal(rig.textAt("0121", 1), "2026-03-15T09:30:15");
  // The live row's text was merged with the stored row of the same time, not lost.
  assert.equal(rig.textAt("0121", 2), "ERR");
  assert.deepEqual(rig.cols["0120"], [null, 95.3, 120]);
  assert.deepEqual(rig.latest["0121"], { v: "ERR", t: t0 + 10 });
  // A number at the same time replaces the text.
  rig.addRows([{ time: iso(t0 + 10), code: "0121", value: 2200 }]);
  assert.equal(rig.textAt("0121", 2), undefined);
  assert.equal(rig.texts["0121"].has(t0 + 10), false);
  // /api/v1/latest may carry text too.
  rig.addLatest([{ code: "0121", unit: "PSI", time: iso(t0 + 20), value: "n/a" }]);
  assert.deepEqual(rig.latest["0121"], { v: "n/a", t: t0 + 20 });
});

test("text readings of rows dropped from the front are dropped with them", () => {
  const rig = new RigData("rig-1");
  const rows = [];
  for (let i = 0; i < 172_802; i += 1) rows.push({ time: iso(t0 + i), code: "0121", value: i < 3 ? "old" : i });
  rig.addRows(rows);
  assert.equal(rig.size, 172_800);
  assert.equal(rig.t[0], t0 + 2);
  assert.equal(rig.textAt("0121", 0), "old");
  assert.deepEqual([...rig.texts["0121"].keys()], [t0 + 2]);
});
