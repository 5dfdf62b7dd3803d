// The alarm banner's state (static/js/alarms.js), under `node --test`. The banner itself (the DOM
// part, alarmbar.js) is covered by the browser test (test_dashboard_alarms.py).
// Run by tests/dashboard/test_dashboard_js.py (TZ=UTC), or: TZ=UTC node --test tests/dashboard/js/

import assert from "node:assert/strict";
import test from "node:test";

import {
  AlarmBoard,
  ackText,
  alarmText,
  canAcknowledge,
} from "../../../src/witskit/service/static/js/alarms.js";

const alarm = (rule, source, severity, second, extra = {}) => ({
  event_id: `${rule}-${source}-${second}`,
  rule,
  source,
  severity,
  state: "fired",
  time: new Date(Date.UTC(2026, 0, 1, 6, 0, second)).toISOString(),
  code: "0121",
  message: `${rule} fired on ${source}: 0121 = 3200 PSI`,
  acknowledged_by: null,
  ...extra,
});
const live = (a, state = "fired") => ({ type: "alarm", ...a, state });

test("the first load is quiet; a later one sounds only the firings not seen", () => {
  const board = new AlarmBoard();
  assert.deepEqual(board.load([alarm("spp", "rig-1", "warning", 1)], { first: true }), []);
  const fresh = board.load([alarm("spp", "rig-1", "warning", 1), alarm("wob", "rig-2", "info", 2)]);
  assert.deepEqual(fresh.map((a) => a.rule), ["wob"]);
  assert.deepEqual(board.load([alarm("wob", "rig-2", "info", 2)]), []);
  assert.deepEqual(board.list().map((a) => a.rule), ["wob"]);
});

test("live firings add, clearings remove, repeats and foreign messages change nothing", () => {
  const board = new AlarmBoard();
  const a = alarm("spp", "rig-1", "critical", 5);
  assert.deepEqual(board.apply(live(a)), { changed: true, sound: true });
  assert.deepEqual(board.apply(live(a)), { changed: false, sound: false });
  assert.deepEqual(board.apply({ source: "rig-1", points: [] }), { changed: false, sound: false });
  assert.deepEqual(board.apply({ type: "frame_error", source: "rig-1" }), { changed: false, sound: false });
  assert.equal(board.level(), "critical");
  assert.deepEqual(board.apply(live(a, "cleared")), { changed: true, sound: false });
  assert.deepEqual(board.apply(live(a, "cleared")), { changed: false, sound: false });
  assert.equal(board.level(), null);
  // A firing already loaded from the API does not sound again when its live message comes late.
  const b = alarm("wob", "rig-1", "warning", 9);
  board.load([b]);
  assert.deepEqual(board.apply(live(b)), { changed: false, sound: false });
});

test("the list is most severe first, then newest first", () => {
  const board = new AlarmBoard();
  board.load([
    alarm("a", "rig-1", "info", 30),
    alarm("b", "rig-1", "critical", 10),
    alarm("c", "rig-2", "warning", 20),
    alarm("d", "rig-2", "critical", 15),
  ]);
  assert.deepEqual(board.list().map((x) => x.rule), ["d", "b", "c", "a"]);
  assert.equal(board.level(), "critical");
});

test("an acknowledgement shows on the alarm's line", () => {
  const board = new AlarmBoard();
  const a = alarm("spp", "rig-1", "warning", 1);
  board.load([a]);
  assert.equal(ackText(board.list()[0]), "");
  assert.equal(board.acknowledged(a.event_id, "op", "2026-01-01T06:01:00+00:00"), true);
  assert.equal(ackText(board.list()[0]), "acknowledged by op");
  assert.equal(board.acknowledged("nosuch", "op"), false);
  assert.equal(alarmText(a), "WARNING spp fired on rig-1: 0121 = 3200 PSI");
});

test("only a caller with alarms:ack gets the acknowledge button", () => {
  assert.equal(canAcknowledge({ permissions: ["data:read", "alarms:ack"] }), true);
  assert.equal(canAcknowledge({ permissions: ["data:read", "analytics:view"] }), false);
  assert.equal(canAcknowledge(null), false);
});

test("the tracks drawing an alarm's channel on the rig on screen are marked, most severe wins", () => {
  const tracks = [
    { id: "hydraulics", series: [{ code: "0121" }, { code: "0130" }] },
    { id: "loads", series: [{ code: "0114" }, { code: "0116" }] },
  ];
  const board = new AlarmBoard();
  board.load([
    alarm("spp", "rig-1", "warning", 1),
    alarm("spp2", "rig-1", "critical", 2),
    alarm("flow", "rig-1", "info", 3, { code: "0130" }),
    alarm("wob", "rig-2", "critical", 4, { code: "0116" }),
  ]);
  assert.deepEqual([...board.marks("rig-1", tracks)], [["hydraulics", "critical"]]);
  assert.deepEqual([...board.marks("rig-2", tracks)], [["loads", "critical"]]);
  assert.deepEqual([...board.marks("rig-3", tracks)], []);
});
