// Data loading (static/js/loader.js) against an in-memory API, under `node --test`.
// The real API and WebSocket are exercised by the browser tests (test_dashboard_browser.py); here
// the Loader's own decisions are: what it asks for, when it stops, what it drops on a rig change.
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import { CUT_SHORT, Loader, RECENT, SERIES_DEBOUNCE } from "../../../src/witskit/service/static/js/loader.js";
import { RAW_SPAN } from "../../../src/witskit/service/static/js/view.js";

const NOW = 1_800_000_000;
const iso = (seconds) => new Date(seconds * 1000).toISOString();
const seconds = (text) => Date.parse(text) / 1000;

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
  }
}

/**
 * The three read endpoints the Loader uses, over rows held in memory: /data pages with a cursor
 * (at most `pageSize` rows a page, as a server may cap the limit), /latest and /data/series.
 * Each answer comes a turn of the event loop later, as over a network; an aborted signal rejects
 * with an AbortError, as fetch does. `fail`, when set, is thrown instead of answering.
 */
class MemoryApi {
  constructor({ rows = [], pageSize = 50000 } = {}) {
    this.rows = rows; // [{time, code, value}], in time order
    this.pageSize = pageSize;
    this.calls = [];
    this.fail = null;
  }

  async get(path, query, signal) {
    this.calls.push({ path, query });
    await new Promise((resolve) => setImmediate(resolve));
    if (signal && signal.aborted) throw new DOMException("The operation was aborted.", "AbortError");
    if (this.fail) throw this.fail;
    if (path === "/latest") {
      return [{ source: query.source, values: [{ code: "0108", unit: "F", time: iso(NOW - 1), value: 6000.5 }] }];
    }
    if (path === "/data") {
      const start = seconds(query.start);
      const end = seconds(query.end);
      const inRange = this.rows.filter((r) => seconds(r.time) >= start && seconds(r.time) < end);
      const offset = query.cursor ? Number(query.cursor) : 0;
      const page = inRange.slice(offset, offset + Math.min(query.limit, this.pageSize));
      const next = offset + page.length < inRange.length ? String(offset + page.length) : null;
      return { rows: page, count: page.length, next_cursor: next };
    }
    if (path === "/data/series") {
      return { series: [{ code: "0108", time: [seconds(query.start) * 1e6], avg: [1], min: [0], max: [2] }] };
    }
    throw new ApiError(404, `no ${path} here`);
  }

  of(path) {
    return this.calls.filter((c) => c.path === path);
  }
}

/** Rows of bit depth every `step` seconds over [start, end). */
function depthRows(start, end, step = 60) {
  const rows = [];
  for (let t = start; t < end; t += step) rows.push({ time: iso(t), code: "0108", value: t - start });
  return rows;
}

/** A Loader on `api`, its clock at NOW, its view `win` ({min, max}), recording what it reports. */
function setUp(api, win = { min: NOW - 3600, max: NOW + 36 }) {
  const seen = { changes: 0, progress: [], live: [], sockets: [] };
  const loader = new Loader({
    api,
    isApiError: (e) => e instanceof ApiError,
    openLive: (name, handlers) => {
      const socket = {
        name,
        handlers,
        closed: false,
        retryIn: 0,
        close() {
          this.closed = true;
          handlers.onState("closed");
        },
      };
      seen.sockets.push(socket);
      handlers.onState("connecting");
      return socket;
    },
    now: () => NOW,
    viewport: () => ({ ...win, bounds: null }),
    trackRows: () => 600,
    onChange: () => {
      seen.changes += 1;
    },
    onProgress: (message) => seen.progress.push(message),
    onLive: (state, detail) => seen.live.push([state, detail]),
  });
  return { loader, seen, win };
}

test("opening a rig subscribes to it, then loads its latest values and its last hour", async () => {
  const api = new MemoryApi({ rows: depthRows(NOW - 7200, NOW) });
  const { loader, seen } = setUp(api);
  const data = loader.open("rig-1");
  assert.equal(loader.rig, "rig-1");
  assert.equal(loader.current(), data);
  assert.deepEqual(seen.live, [["connecting", undefined]]);
  await loader.loadStart(data, 3600);
  assert.deepEqual(
    api.calls.map((c) => c.path),
    ["/latest", "/data"],
  );
  assert.equal(data.units["0108"], "F");
  assert.equal(data.size, 60);
  assert.equal(data.loadedFrom, NOW - 3600);
  assert.equal(loader.loading, 0);
  assert.deepEqual(seen.progress, ["", ""]);
  assert.ok(seen.changes > 0);
});

test("the first load is an hour at least and RAW_SPAN at most", async () => {
  for (const [span, want] of [
    [900, 3600],
    [5400, 5400],
    [86400, RAW_SPAN],
  ]) {
    const api = new MemoryApi();
    const { loader } = setUp(api);
    await loader.loadStart(loader.open("rig-1"), span);
    assert.equal(api.of("/data")[0].query.start, iso(NOW - want), `span ${span}`);
  }
});

test("live frames of the rig land in its rows; another source's are ignored", () => {
  const { loader, seen } = setUp(new MemoryApi());
  const data = loader.open("rig-1");
  const { onFrame } = seen.sockets[0].handlers;
  const before = seen.changes;
  onFrame({ source: "rig-1", timestamp: iso(NOW), points: [{ code: "0108", value: 1, unit: "F" }] });
  onFrame({ source: "rig-2", timestamp: iso(NOW + 1), points: [{ code: "0108", value: 2, unit: "F" }] });
  onFrame({ source: "rig-1", type: "frame_error", timestamp: iso(NOW + 2) });
  assert.equal(data.size, 1);
  assert.equal(data.lastFrame, NOW);
  assert.equal([...data.errors.values()].reduce((a, b) => a + b, 0), 1);
  assert.equal(seen.changes - before, 2);
});

test("a range comes page by page, and stops at maxPoints saying so", async () => {
  const api = new MemoryApi({ rows: depthRows(NOW - 300, NOW), pageSize: 2 });
  const { loader, seen } = setUp(api);
  const data = loader.open("rig-1");
  assert.equal(await loader.loadRange(data, NOW - 300, NOW), true);
  assert.equal(api.of("/data").length, 3);
  assert.equal(data.size, 5);
  assert.equal(data.loadedFrom, NOW - 300);

  const short = loader.open("rig-2");
  seen.progress.length = 0;
  assert.equal(await loader.loadRange(short, NOW - 300, NOW, { maxPoints: 2 }), false);
  assert.equal(short.size, 2);
  assert.equal(short.loadedFrom, null, "an incomplete range is not marked as loaded");
  assert.deepEqual(seen.progress, ["", CUT_SHORT]);
});

test("an API error cuts a range short; any other error is a bug and is thrown", async () => {
  const api = new MemoryApi({ rows: depthRows(NOW - 300, NOW) });
  const { loader, seen } = setUp(api);
  const data = loader.open("rig-1");
  api.fail = new ApiError(503, "busy");
  assert.equal(await loader.loadRange(data, NOW - 300, NOW), false);
  assert.equal(seen.progress.at(-1), CUT_SHORT);
  api.fail = new TypeError("a bug");
  await assert.rejects(loader.loadRange(data, NOW - 300, NOW), TypeError);
  assert.equal(loader.loading, 0);
  assert.equal(loader.aborts.size, 0);
});

test("another rig cancels the loads in flight and closes the old subscription", async () => {
  const api = new MemoryApi({ rows: depthRows(NOW - 3600, NOW) });
  const { loader, seen } = setUp(api);
  const first = loader.open("rig-1");
  const loading = loader.loadRange(first, NOW - 3600, NOW);
  loader.open("rig-2");
  assert.equal(await loading, false);
  assert.equal(first.size, 0);
  assert.equal(seen.sockets[0].closed, true);
  // The old subscription's states no longer reach the screen.
  seen.live.length = 0;
  seen.sockets[0].handlers.onState("live");
  seen.sockets[1].handlers.onState("live");
  assert.deepEqual(seen.live, [["live", undefined]]);
  assert.equal(loader.loading, 0);
});

test("a short view near the present extends the live rows back", async () => {
  const api = new MemoryApi({ rows: depthRows(NOW - 4 * 3600, NOW) });
  const { loader, win } = setUp(api);
  const data = loader.open("rig-1");
  await loader.loadRange(data, NOW - 3600, NOW);
  Object.assign(win, { min: NOW - 5400, max: NOW - 3600 });
  loader.request();
  while (loader.extending) await new Promise((resolve) => setImmediate(resolve));
  const last = api.of("/data").at(-1).query;
  assert.deepEqual([last.start, last.end], [iso(NOW - 5400), iso(NOW - 3600)]);
  assert.equal(data.loadedFrom, NOW - 5400);
  assert.equal(loader.past, null);
  // Already loaded: nothing more is asked for.
  const asked = api.calls.length;
  Object.assign(win, { min: NOW - 5000, max: NOW - 4000 });
  loader.request();
  assert.equal(api.calls.length, asked);
});

test("a short view far back gets rows of its own, with half its span to spare each side", async () => {
  const far = NOW - RECENT - 86400;
  const api = new MemoryApi({ rows: depthRows(far - 7200, far + 7200) });
  const { loader, win } = setUp(api);
  const data = loader.open("rig-1");
  data.units = { "0108": "F" };
  Object.assign(win, { min: far, max: far + 3600 });
  loader.request();
  const past = loader.past;
  assert.deepEqual([past.from, past.to], [far - 1800, far + 5400]);
  assert.equal(past.data.units, data.units);
  while (loader.loading) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(past.data.size, 120);
  assert.equal(data.size, 0, "the live rows are left alone");
  // A pan within the spare half needs no new request.
  assert.equal(loader.pastFor(far - 1000, far + 2600), past);
  const asked = api.calls.length;
  Object.assign(win, { min: far - 1000, max: far + 2600 });
  loader.request();
  assert.equal(api.calls.length, asked);
  // Past it, a new window replaces the old, whose load is cancelled.
  Object.assign(win, { min: far + 7200, max: far + 10800 });
  loader.request();
  assert.notEqual(loader.past, past);
  assert.equal(loader.pastFor(far - 1000, far + 2600), null);
  loader.stop();
});

test("a long view asks for buckets once it has settled, and not again while they cover it", async () => {
  const api = new MemoryApi();
  const { loader, win } = setUp(api);
  loader.open("rig-1");
  Object.assign(win, { min: NOW - 86400, max: NOW });
  loader.request();
  loader.request();
  loader.request();
  assert.equal(api.of("/data/series").length, 0);
  await new Promise((resolve) => setTimeout(resolve, SERIES_DEBOUNCE + 100));
  while (loader.loading) await new Promise((resolve) => setImmediate(resolve));
  const asked = api.of("/data/series");
  assert.equal(asked.length, 1);
  assert.ok(asked[0].query.points > 0 && asked[0].query.points <= 600 * 2);
  const held = loader.heldSeries();
  assert.equal(held.rig, "rig-1");
  assert.equal(held.cols["0108"].avg[0], 1);
  await loader.loadSeries();
  assert.equal(api.of("/data/series").length, 1);
  // Another rig's buckets are not this one's.
  loader.open("rig-2");
  assert.equal(loader.heldSeries(), null);
  loader.stop();
});

test("signing out drops every rig's rows and the subscription", async () => {
  const { loader, seen } = setUp(new MemoryApi());
  await loader.loadStart(loader.open("rig-1"), 3600);
  loader.stop();
  assert.equal(loader.rig, null);
  assert.equal(loader.socket, null);
  assert.equal(loader.data.size, 0);
  assert.equal(seen.sockets[0].closed, true);
  assert.equal(loader.current(), undefined);
  await loader.loadSeries(); // nothing on screen: nothing asked for
  await loader.catchUp(undefined);
});
