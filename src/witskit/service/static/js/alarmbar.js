// The alarm banner under the top bar: the active alarms of every rig (GET /api/v1/alarms, every
// few seconds, and the live {type: "alarm"} messages of the rig on screen between two loads),
// coloured by the most severe, an Acknowledge button for those whose roles grant alarms:ack, an
// optional sound (off until the user turns it on; remembered in this browser), and the tracks
// that draw an alarm's channel marked. The state is alarms.js's; this module only draws it.

import { api } from "./api.js";
import { TIME_TRACKS } from "./charts.js";
import { AlarmBoard, ackText, alarmText, canAcknowledge } from "./alarms.js";
import { byId, h } from "./dom.js";

const SOUND_KEY = "witskit.alarmSound";
/** How often the active alarms are reloaded (ms): other rigs' alarms and acknowledgements. */
const POLL_MS = 5000;

const bar = {
  board: new AlarmBoard(),
  me: null,
  rig: () => null,
  timer: 0,
  running: false,
  loaded: false,
  audio: null,
};

function soundOn() {
  try {
    return localStorage.getItem(SOUND_KEY) === "on";
  } catch {
    return false;
  }
}

function setSound(on) {
  try {
    localStorage.setItem(SOUND_KEY, on ? "on" : "off");
  } catch {
    // private mode: the choice lasts for this page only
  }
  render();
}

/** Two short tones (Web Audio: no file to fetch, nothing inline for the page's policy). */
function beep() {
  if (!soundOn()) return;
  try {
    bar.audio = bar.audio || new AudioContext();
    const ctx = bar.audio;
    for (const [at, freq] of [[0, 880], [0.25, 660]]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.18);
    }
    document.body.dataset.alarmSounded = String(Number(document.body.dataset.alarmSounded || 0) + 1);
  } catch {
    // no audio device: the banner still shows
  }
}

async function acknowledge(alarm, button) {
  button.disabled = true;
  try {
    const answer = await api.post(`/alarms/${encodeURIComponent(alarm.event_id)}/ack`);
    bar.board.acknowledged(alarm.event_id, answer.acknowledged_by, answer.acknowledged_at);
  } catch (e) {
    // 409: someone else was first; the next load shows who. Anything else: say it on the line.
    button.disabled = false;
    button.title = e.message || "Not acknowledged";
    if (e.status === 409) await load();
  }
  render();
}

function line(alarm, mayAck) {
  const ack = ackText(alarm);
  return h(
    "li",
    { class: `alarm alarm-${alarm.severity}`, dataset: { alarmId: alarm.event_id, severity: alarm.severity } },
    h("span", { class: "alarm-text" }, alarmText(alarm)),
    ack ? h("span", { class: "alarm-ack muted" }, ack) : null,
    mayAck && !alarm.acknowledged_by
      ? h(
          "button",
          {
            type: "button",
            class: "alarm-ack-button",
            onclick: (event) => acknowledge(alarm, event.currentTarget),
          },
          "Acknowledge",
        )
      : null,
  );
}

function markTracks() {
  const marks = bar.board.marks(bar.rig(), TIME_TRACKS);
  for (const el of document.querySelectorAll("#tracks .track[data-track]")) {
    const level = marks.get(el.dataset.track);
    if (level) el.dataset.alarm = level;
    else delete el.dataset.alarm;
  }
}

function render() {
  const banner = byId("alarm-banner");
  const alarms = bar.board.list();
  markTracks();
  banner.hidden = alarms.length === 0;
  banner.dataset.level = bar.board.level() || "";
  const mayAck = canAcknowledge(bar.me);
  const sound = soundOn();
  banner.replaceChildren(
    h("span", { class: "alarm-count" }, `${alarms.length} active alarm${alarms.length === 1 ? "" : "s"}`),
    h("ul", { class: "alarm-list" }, alarms.map((a) => line(a, mayAck))),
    h(
      "button",
      {
        type: "button",
        id: "alarm-sound",
        class: "ghost alarm-sound",
        "aria-pressed": String(sound),
        title: "Sound a tone when an alarm fires",
        onclick: () => setSound(!soundOn()),
      },
      sound ? "Sound on" : "Sound off",
    ),
  );
}

async function load() {
  try {
    const list = await api.get("/alarms");
    const fresh = bar.board.load(list, { first: !bar.loaded });
    bar.loaded = true;
    if (fresh.length) beep();
  } catch {
    return; // the API is away or the session ended: the next load tries again
  }
  if (bar.running) render();
}

async function poll() {
  if (!bar.running) return;
  await load();
  if (bar.running) bar.timer = setTimeout(poll, POLL_MS);
}

/** Start the banner for the signed-in caller (`me`: GET /auth/me); `rig()` is the rig on screen. */
export function startAlarms(me, rig) {
  stopAlarms();
  bar.me = me;
  bar.rig = rig;
  bar.board = new AlarmBoard();
  bar.loaded = false;
  bar.running = true;
  poll();
}

/** Stop polling and hide the banner (signed out). */
export function stopAlarms() {
  bar.running = false;
  clearTimeout(bar.timer);
  bar.me = null;
  const banner = document.getElementById("alarm-banner");
  if (banner) {
    banner.hidden = true;
    banner.replaceChildren();
  }
}

/** A live {type: "alarm"} message of the rig on screen. */
export function onAlarmMessage(message) {
  const { changed, sound } = bar.board.apply(message);
  if (sound) beep();
  if (changed && bar.running) render();
}

/** The rig on screen changed, or its tracks were rebuilt: mark them again. */
export function remarkTracks() {
  if (bar.running) markTracks();
}
