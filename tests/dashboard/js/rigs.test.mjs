// The rig picker's pure parts (static/js/rigs.js), under `node --test`. renderRigs, the DOM part,
// is covered by the browser tests (test_dashboard_browser.py).
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import { autoPick, fleetText, pollDelay, rigAge, rigBounds, rigStatus } from "../../../src/witskit/service/static/js/rigs.js";

const now = 1_800_000_000;
const iso = (seconds) => new Date(seconds * 1000).toISOString();

test("a rig's state reads from its connection and how long it has been silent", () => {
  const cases = [
    [{ connection: null }, 5, ["ok", "receiving"]],
    [{ connection: null }, 120, ["idle", "stored"]],
    [{}, null, ["idle", "stored"]],
    [{ connection: "connected" }, 5, ["ok", "connected"]],
    [{ connection: "running" }, null, ["ok", "running"]],
    [{ connection: "connected" }, 61, ["warn", "connected, silent"]],
    [{ connection: "reconnecting" }, 5, ["warn", "reconnecting"]],
    [{ connection: "waiting" }, null, ["warn", "waiting"]],
    [{ connection: "failed" }, 5, ["bad", "failed"]],
  ];
  for (const [source, age, want] of cases) assert.deepEqual(rigStatus(source, age), want, JSON.stringify([source, age]));
});

test("a rig's age is from its newest frame, listed or received live", () => {
  const source = { name: "rig-1", last_time: iso(now - 30) };
  assert.equal(rigAge(source, undefined, now), 30);
  assert.equal(rigAge(source, { lastFrame: now - 2 }, now), 2);
  assert.equal(rigAge(source, { lastFrame: now - 90 }, now), 30);
  assert.equal(rigAge({ name: "new" }, undefined, now), null);
  assert.equal(rigAge({ name: "new" }, { lastFrame: now - 4 }, now), 4);
  // A clock a little ahead of the server's never shows a negative age.
  assert.equal(rigAge({ name: "x", last_time: iso(now + 3) }, undefined, now), 0);
});

test("a rig's stored range is known once the list has its first frame", () => {
  assert.equal(rigBounds(undefined, undefined), null);
  assert.equal(rigBounds({ name: "rig-1", first_time: null }, undefined), null);
  const source = { name: "rig-1", first_time: iso(now - 3600), last_time: iso(now - 10) };
  assert.deepEqual(rigBounds(source, undefined), { first: now - 3600, last: now - 10 });
  assert.deepEqual(rigBounds(source, { lastFrame: now - 1 }), { first: now - 3600, last: now - 1 });
  assert.deepEqual(rigBounds({ ...source, last_time: null }, undefined), { first: now - 3600, last: null });
});

test("the rig opened by itself is the one opened last time, or the only one", () => {
  const rigs = [{ name: "rig-1" }, { name: "rig-2" }];
  assert.equal(autoPick(rigs, "rig-2"), "rig-2");
  assert.equal(autoPick(rigs, "gone"), null);
  assert.equal(autoPick(rigs, null), null);
  assert.equal(autoPick([{ name: "only" }], "gone"), "only");
  assert.equal(autoPick([], "rig-1"), null);
});

test("the list is asked for sooner while there is no rig", () => {
  assert.equal(pollDelay([]), 1500);
  assert.equal(pollDelay([{ name: "rig-1" }]), 5000);
});

test("a fleet's rig shows its edge and its receive-to-commit lag", () => {
  assert.equal(fleetText({ name: "rig-7", edge: "site-a", lag_seconds: 0.42 }), "site-a, lag 0.4 s");
  assert.equal(fleetText({ name: "rig-7", edge: "site-a", lag_seconds: 75.6 }), "site-a, lag 76 s");
  assert.equal(fleetText({ name: "rig-7", edge: "site-a", lag_seconds: null }), "site-a");
  assert.equal(fleetText({ name: "rig-7", edge: null, lag_seconds: null }), "");
});
