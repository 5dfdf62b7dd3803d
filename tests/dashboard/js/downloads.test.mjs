// The Download menu's requests and file names (static/js/downloads.js), under `node --test`. The
// download itself (fetch with the credential, blob link) is covered by test_dashboard_browser.py.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import {
  DOWNLOADS,
  MAX_ROWS,
  downloadRequest,
  downloadUrl,
  fallbackName,
  fileName,
  isoSeconds,
  timeStep,
} from "../../../src/witskit/service/static/js/downloads.js";
import { CODES } from "../../../src/witskit/service/static/js/store.js";

/** 2026-01-01T06:00:00Z */
const t0 = 1_767_247_200;
const hour = [t0, t0 + 3600];

test("each choice asks its route for the rig's track channels over the view window", () => {
  assert.deepEqual(downloadRequest("las-depth", "rig-1", hour, CODES), {
    path: "/data/las",
    query: {
      source: "rig-1",
      codes: "0108,0110,0113,0114,0116,0120,0118,0121,0130,0126",
      index: "depth",
      start: "2026-01-01T06:00:00Z",
      end: "2026-01-01T07:00:00Z",
    },
  });
  assert.deepEqual(downloadRequest("las-time", "rig-1", hour, ["0113"]).query.index, "time");
  assert.equal(downloadRequest("witsml-1411", "rig-1", hour, ["0113"]).query.version, "1.4.1.1");
  const v20 = downloadRequest("witsml-20", "rig-1", hour, ["0113"]);
  assert.equal(v20.path, "/data/witsml");
  assert.equal(v20.query.version, "2.0");
  assert.equal(v20.query.index, "time");
  assert.equal("version" in downloadRequest("las-time", "rig-1", hour, ["0113"]).query, false);
  assert.deepEqual(DOWNLOADS.map((d) => d.id), ["las-time", "las-depth", "witsml-1411", "witsml-20"]);
});

test("the window is sent to the whole second, covering what is on screen", () => {
  assert.equal(isoSeconds(t0 + 0.7), "2026-01-01T06:00:00Z");
  assert.equal(isoSeconds(t0 + 0.2, true), "2026-01-01T06:00:01Z");
  const { query } = downloadRequest("las-time", "rig-1", [t0 + 10.5, t0 + 70.25], ["0113"]);
  assert.equal(query.start, "2026-01-01T06:00:10Z");
  assert.equal(query.end, "2026-01-01T06:01:11Z");
});

test("a long time window gets a step that keeps it under MAX_ROWS rows; depth keeps its own", () => {
  assert.equal(timeStep(3600), null);
  assert.equal(timeStep(MAX_ROWS), null);
  assert.equal(timeStep(MAX_ROWS + 1), 2);
  const week = [t0, t0 + 7 * 86400];
  const { query } = downloadRequest("witsml-20", "rig-1", week, ["0113"]);
  assert.equal(query.step, "7");
  assert.ok((7 * 86400) / Number(query.step) <= MAX_ROWS);
  assert.equal("step" in downloadRequest("las-depth", "rig-1", week, ["0113"]).query, false);
  assert.equal("step" in downloadRequest("las-time", "rig-1", hour, ["0113"]).query, false);
});

test("the URL encodes every value: a rig name cannot add a parameter", () => {
  const url = downloadUrl("las-time", "rig 1&codes=WID#x", hour, ["0113"]);
  const parsed = new URL(url, "http://witskit.test");
  assert.equal(parsed.pathname, "/api/v1/data/las");
  assert.equal(parsed.searchParams.get("source"), "rig 1&codes=WID#x");
  assert.deepEqual(parsed.searchParams.getAll("codes"), ["0113"]);
  assert.equal(parsed.hash, "");
});

test("a request without a rig, with an empty window or of no known kind is refused", () => {
  assert.throws(() => downloadRequest("las-time", null, hour, ["0113"]), /no rig/);
  assert.throws(() => downloadRequest("las-time", "rig-1", [t0, t0], ["0113"]), /window is empty/);
  assert.throws(() => downloadRequest("las-time", "rig-1", [NaN, t0], ["0113"]), /window is empty/);
  assert.throws(() => downloadRequest("csv", "rig-1", hour, ["0113"]), /unknown download/);
});

test("the file is named as the service says, never as a path", () => {
  const header = "attachment; filename=\"rig-1_depth.las\"; filename*=UTF-8''rig-1_depth.las";
  assert.equal(fileName(header, "x.las"), "rig-1_depth.las");
  assert.equal(fileName('attachment; filename="../../.bashrc"', "x.las"), "_.._.bashrc");
  assert.equal(fileName('attachment; filename="..."', "x.las"), "x.las");
  assert.equal(fileName(null, "x.las"), "x.las");
  assert.equal(fileName("attachment", "x.las"), "x.las");
  assert.equal(fallbackName("witsml-20", "Bohrung Ä/7"), "Bohrung_7_time.xml");
  assert.equal(fallbackName("las-depth", "../.."), "export_depth.las");
});
