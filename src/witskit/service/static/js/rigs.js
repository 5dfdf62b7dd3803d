// The rig picker: the list of rigs in the side panel, each with its connection state and the age
// of its last frame, and which rig to open by itself. `sources` is the body of /api/v1/sources;
// `data` a rig's RigData (store.js), or undefined before it was opened. Only renderRigs touches
// the DOM; the rest is pure, so `node --test` runs it (tests/dashboard/js/).

import { formatAge, h, setText } from "./dom.js";
import { currentStateText, stateStyle } from "./rigstate.js";

const CONNECTED = new Set(["connected", "running"]);
const TRYING = new Set(["connecting", "reconnecting", "waiting", "starting"]);
/** A rig silent longer than this (seconds) is no longer "receiving". */
const SILENT = 60;

/** Seconds since the rig's last frame (from the list or, newer, from the live frames), or null. */
export function rigAge(source, data, now) {
  let last = source.last_time ? Date.parse(source.last_time) / 1000 : null;
  if (data && data.lastFrame && (!last || data.lastFrame > last)) last = data.lastFrame;
  return last === null ? null : Math.max(0, now - last);
}

/** [level, text] for the rig's dot and line: level is "ok", "warn", "bad" or "idle". */
export function rigStatus(source, age) {
  if (source.connection === null || source.connection === undefined) {
    return age !== null && age < SILENT ? ["ok", "receiving"] : ["idle", "stored"];
  }
  const conn = String(source.connection);
  if (CONNECTED.has(conn)) return age !== null && age > SILENT ? ["warn", `${conn}, silent`] : ["ok", conn];
  if (TRYING.has(conn)) return ["warn", conn];
  return ["bad", conn];
}

/**
 * In a fleet (docs/fleet.md), the edge a rig comes through and its last frame's lag from receive at
 * the edge to commit at the centre ("site-a, lag 0.4 s"); "" for a rig that is not a fleet's.
 */
export function fleetText(source) {
  if (!source || !source.edge) return "";
  const lag = source.lag_seconds === null || source.lag_seconds === undefined ? NaN : Number(source.lag_seconds);
  return Number.isFinite(lag) ? `${source.edge}, lag ${lag < 10 ? lag.toFixed(1) : Math.round(lag)} s` : source.edge;
}

/** The rig's stored range in seconds ({first, last}; last may be null), or null before it is known. */
export function rigBounds(source, data) {
  const first = source && source.first_time ? Date.parse(source.first_time) / 1000 : NaN;
  if (!Number.isFinite(first)) return null;
  let last = source.last_time ? Date.parse(source.last_time) / 1000 : null;
  if (data && data.lastFrame && (last === null || data.lastFrame > last)) last = data.lastFrame;
  return { first, last };
}

/** The rig to open when none is: the one opened last time if it is listed, else the only one, else null. */
export function autoPick(sources, preferred) {
  const wanted = preferred && sources.find((s) => s.name === preferred);
  if (wanted) return wanted.name;
  if (sources.length === 1) return sources[0].name;
  return null;
}

/** Milliseconds until the list is asked for again: sooner while there is no rig yet. */
export function pollDelay(sources) {
  return sources.length ? 5000 : 1500;
}

/**
 * Brings the list `list` (a <ul>) up to date with `sources`, adding and removing items in place
 * so focus stays where it is. `selected` is the rig on screen, `dataOf(name)` its RigData, and
 * `onPick(name)` is called when a rig's button is pressed.
 */
export function renderRigs(list, sources, { selected, dataOf, now, onPick }) {
  const seen = new Set();
  for (const source of sources) {
    seen.add(source.name);
    let item = list.querySelector(`li[data-rig="${CSS.escape(source.name)}"]`);
    if (!item) {
      const button = h(
        "button",
        { type: "button", class: "rig", "aria-pressed": "false", onclick: () => onPick(source.name) },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "rig-name" }, source.name),
        h("span", { class: "rig-state" }),
        h("span", { class: "rig-age" }),
        h("span", { class: "rig-activity", "data-testid": "rig-activity" }, h("span", { class: "swatch", "aria-hidden": "true" }), h("span", { class: "rig-activity-text" })),
      );
      item = h("li", { dataset: { rig: source.name } }, button);
      list.append(item);
    }
    const age = rigAge(source, dataOf(source.name), now);
    const [level, text] = rigStatus(source, age);
    const button = item.querySelector("button");
    button.dataset.state = level;
    button.setAttribute("aria-pressed", String(source.name === selected));
    const fleet = fleetText(source);
    setText(item.querySelector(".rig-state"), fleet ? `${text} · ${fleet}` : text);
    setText(item.querySelector(".rig-age"), age === null ? "no frames" : `${formatAge(age)} ago`);
    // What the rig is doing (the live rig state, /api/v1/sources), with the strip's colour.
    const activity = currentStateText(source, now, formatAge);
    const box = item.querySelector(".rig-activity");
    box.hidden = !activity;
    box.dataset.state = source.rig_state || "";
    box.querySelector(".swatch").style.background = source.rig_state ? stateStyle(source.rig_state).colour : "";
    setText(box.querySelector(".rig-activity-text"), activity);
    const doing = activity ? `, ${activity}` : "";
    button.setAttribute("aria-label", `${source.name}: ${text}${doing}, last frame ${age === null ? "never" : `${formatAge(age)} ago`}`);
  }
  for (const item of [...list.children]) if (!seen.has(item.dataset.rig)) item.remove();
}
