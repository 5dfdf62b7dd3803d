// The dashboard: sign-in, the rig picker, live tiles, tracks, data quality, units and theme.
//
// Data flow: picking a rig loads its last hour from /api/v1/data and subscribes to
// /api/v1/live?source=...; frames land in a RigData (store.js) and the screen is redrawn at most
// once per animation frame. Ages and the live window move once a second. While the WebSocket is
// down the dashboard polls /api/v1/data for what it missed, so nothing is lost across a reconnect
// and a server that does not ingest (witskit serve) still updates.

import { ApiError, LiveSocket, api, session } from "./api.js";
import { renderAdmin } from "./admin.js";
import { QualityChart, TIME_TRACKS, DEPTH_TRACK, Tracks, palette } from "./charts.js";
import { byId, formatAge, formatClock, h, setText } from "./dom.js";
import { CHANNELS, CODES, DIGITS, RigData } from "./store.js";
import { converter, loadUnits, systemOf, targetUnit, unitLabel } from "./units.js";

const PREFS_KEY = "witskit.prefs";
/** The longest range the tracks show (the /data route sends every point: see docs/dashboard.md). */
const MAX_SPAN = 12 * 3600;
const MIN_SPAN = 60;
/** Points fetched per /data page, and at most per range. */
const PAGE = 50000;
const MAX_POINTS = 1000000;
/** A value older than this is shown as stale (seconds). */
const STALE = 15;

// Preferences (not secrets): units, theme, last rig. -------------------------------------------
const prefs = (() => {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") || {};
  } catch {
    saved = {};
  }
  return {
    ...{ theme: "dark", units: null, rig: null },
    ...saved,
    save() {
      const { theme, units, rig } = this;
      localStorage.setItem(PREFS_KEY, JSON.stringify({ theme, units, rig }));
    },
  };
})();

const state = {
  me: null,
  started: false,
  sources: [],
  rig: null,
  data: new Map(),
  socket: null,
  liveState: "idle",
  view: { live: true, span: 3600, min: 0, max: 0 },
  tracks: null,
  quality: null,
  tiles: new Map(),
  dirty: true,
  drawn: -1,
  cursor: null,
  depthCursor: null,
  timers: [],
  aborts: new Set(), // stored-data loads in flight, cancelled when the rig changes
  loading: 0,
  slice: null,
  looping: false, // the animation-frame loop runs (one at most, across sign-out and sign-in)
};

// Theme ---------------------------------------------------------------------------------------
const THEMES = ["dark", "light", "auto"];

function applyTheme() {
  const theme = THEMES.includes(prefs.theme) ? prefs.theme : "dark";
  document.documentElement.dataset.theme = theme;
  const button = byId("theme-toggle");
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  button.textContent = theme === "auto" ? "Auto" : theme === "dark" ? "Dark" : "Light";
  button.setAttribute("aria-label", `Theme: ${theme}. Switch to ${next}`);
  rebuildCharts();
}

function rebuildCharts() {
  if (!state.tracks) return;
  const theme = palette();
  const empty = TIME_TRACKS.map((def) => [[], ...def.series.map(() => [])]);
  state.tracks.build(theme, empty, [[], ...DEPTH_TRACK.series.map(() => [])]);
  state.quality.build(theme, [[], [], [], []]);
  state.drawn = -1;
  state.dirty = true;
}

// Views ---------------------------------------------------------------------------------------
function show(id) {
  for (const view of ["booting", "login-view", "app"]) byId(view).hidden = view !== id;
}

function showLogin(message) {
  stopApp();
  show("login-view");
  const error = byId("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  byId("login-password").value = "";
  byId("login-user").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const user = byId("login-user").value.trim();
  const password = byId("login-password").value;
  const error = byId("login-error");
  const submit = byId("login-submit");
  if (!user || !password) {
    error.hidden = false;
    error.textContent = "Enter your user name and password.";
    return;
  }
  submit.disabled = true;
  error.hidden = true;
  try {
    await session.login(user, password);
    byId("login-password").value = "";
    await startApp();
  } catch (e) {
    error.hidden = false;
    if (e instanceof ApiError && e.status === 429) {
      error.textContent = `Too many failed sign-ins. Try again in ${e.retryAfter || "a few"} s.`;
    } else if (e instanceof ApiError && e.status === 401) {
      error.textContent = "Wrong user name or password.";
    } else {
      error.textContent = e.message || "Sign-in failed.";
    }
  } finally {
    submit.disabled = false;
  }
}

async function startApp() {
  let me;
  try {
    me = await api.get("/auth/me");
  } catch (e) {
    if (!session.active) return; // expired: the sign-in form is showing already
    showLogin(e.message);
    return;
  }
  state.me = me;
  state.started = true;
  show("app");
  const who = me.kind === "api_key" ? `key ${me.name}` : me.name;
  setText(byId("user-name"), `${who} · ${me.roles.join(", ") || "no role"}`);
  byId("nav-admin").hidden = !canAdmin();
  byId("logout").textContent = session.kind === "key" ? "Forget key" : "Log out";
  buildDashboard();
  route();
  pollSources();
  state.timers.push(setInterval(tick, 1000));
  if (!state.looping) {
    state.looping = true;
    requestAnimationFrame(frameLoop);
  }
}

function stopApp() {
  state.started = false;
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  clearTimeout(state.sourcesTimer);
  if (state.socket) state.socket.close();
  state.socket = null;
  for (const abort of state.aborts) abort.abort();
  state.rig = null;
  state.data.clear();
  state.me = null;
  setLive("idle");
}

function canAdmin() {
  return Boolean(state.me && state.me.permissions.includes("users:admin"));
}

function route() {
  const admin = window.location.pathname === "/admin";
  byId("dashboard-view").hidden = admin;
  byId("admin-view").hidden = !admin;
  for (const [id, current] of [["nav-dashboard", !admin], ["nav-admin", admin]]) {
    if (current) byId(id).setAttribute("aria-current", "page");
    else byId(id).removeAttribute("aria-current");
  }
  if (admin) {
    const allowed = canAdmin();
    byId("admin-denied").hidden = allowed;
    byId("admin-body").hidden = !allowed;
    // A viewer never asks for the user list: the page says why, the API would refuse anyway.
    if (allowed) renderAdmin(byId("admin-body"));
  } else {
    state.dirty = true;
    if (state.tracks) requestAnimationFrame(() => state.tracks.resize());
  }
}

function navigate(event) {
  const link = event.target.closest("a[href]");
  if (!link || link.origin !== window.location.origin || !["/", "/admin"].includes(link.pathname)) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  if (link.pathname !== window.location.pathname) history.pushState(null, "", link.pathname);
  route();
  byId("main").focus();
}

// Rigs ----------------------------------------------------------------------------------------
async function pollSources() {
  clearTimeout(state.sourcesTimer);
  if (!state.started) return;
  try {
    state.sources = await api.get("/sources");
    renderRigs();
    if (!state.rig) {
      const wanted = prefs.rig && state.sources.find((s) => s.name === prefs.rig);
      if (wanted) selectRig(wanted.name);
      else if (state.sources.length === 1) selectRig(state.sources[0].name);
    }
  } catch (e) {
    if (!session.active) return;
  }
  if (state.started) state.sourcesTimer = setTimeout(pollSources, state.sources.length ? 5000 : 1500);
}

const CONNECTED = new Set(["connected", "running"]);
const TRYING = new Set(["connecting", "reconnecting", "waiting", "starting"]);

function rigStatus(source, age) {
  if (source.connection === null || source.connection === undefined) {
    return age !== null && age < 60 ? ["ok", "receiving"] : ["idle", "stored"];
  }
  const conn = String(source.connection);
  if (CONNECTED.has(conn)) return age !== null && age > 60 ? ["warn", `${conn}, silent`] : ["ok", conn];
  if (TRYING.has(conn)) return ["warn", conn];
  return ["bad", conn];
}

function rigAge(source) {
  const data = state.data.get(source.name);
  let last = source.last_time ? Date.parse(source.last_time) / 1000 : null;
  if (data && data.lastFrame && (!last || data.lastFrame > last)) last = data.lastFrame;
  return last === null ? null : Math.max(0, session.now() - last);
}

function renderRigs() {
  const list = byId("rig-list");
  byId("rig-empty").hidden = state.sources.length > 0;
  const seen = new Set();
  for (const source of state.sources) {
    seen.add(source.name);
    let item = list.querySelector(`li[data-rig="${CSS.escape(source.name)}"]`);
    if (!item) {
      const button = h(
        "button",
        { type: "button", class: "rig", "aria-pressed": "false", onclick: () => selectRig(source.name) },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "rig-name" }, source.name),
        h("span", { class: "rig-state" }),
        h("span", { class: "rig-age" }),
      );
      item = h("li", { dataset: { rig: source.name } }, button);
      list.append(item);
    }
    const age = rigAge(source);
    const [level, text] = rigStatus(source, age);
    const button = item.querySelector("button");
    button.dataset.state = level;
    button.setAttribute("aria-pressed", String(source.name === state.rig));
    setText(item.querySelector(".rig-state"), text);
    setText(item.querySelector(".rig-age"), age === null ? "no frames" : `${formatAge(age)} ago`);
    button.setAttribute("aria-label", `${source.name}: ${text}, last frame ${age === null ? "never" : `${formatAge(age)} ago`}`);
  }
  for (const item of [...list.children]) if (!seen.has(item.dataset.rig)) item.remove();
}

async function selectRig(name) {
  if (state.rig === name) return;
  if (state.socket) state.socket.close();
  for (const abort of state.aborts) abort.abort();
  state.rig = name;
  prefs.rig = name;
  prefs.save();
  let data = state.data.get(name);
  if (!data) {
    data = new RigData(name);
    state.data.set(name, data);
  }
  setText(byId("rig-title"), name);
  document.title = `${name} · WitsKit`;
  byId("pick-hint").hidden = true;
  state.view = { live: true, span: state.view.span || 3600, min: 0, max: 0 };
  state.cursor = null;
  renderRigs();
  state.socket = new LiveSocket(name, {
    onFrame: (record) => {
      if (record.source && record.source !== name) return;
      if (record.type === "frame_error") data.addFrameError(record);
      else data.addFrame(record);
      state.dirty = true;
    },
    onState: (s, detail) => {
      if (state.rig === name) setLive(s, detail);
    },
    onReconnect: () => catchUp(data),
  });
  // The latest values first: they carry each channel's unit (stored rows do not), and fill the
  // tiles at once, before the history has arrived.
  try {
    const [latest] = await api.get("/latest", { source: name, codes: CODES.join(",") });
    if (latest && state.data.get(name) === data) data.addLatest(latest.values);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
  }
  const now = session.now();
  await loadRange(data, now - Math.max(state.view.span, 3600), now);
  state.dirty = true;
}

// Loading stored data -------------------------------------------------------------------------
function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

/** Fetches stored points of [start, end) page by page into `data`. Returns false when cut short. */
async function loadRange(data, start, end, { maxPoints = MAX_POINTS, from = start } = {}) {
  const abort = new AbortController();
  state.aborts.add(abort);
  state.loading += 1;
  updateRangeText();
  let cursor;
  let total = 0;
  let complete = true;
  try {
    for (;;) {
      const page = await api.get(
        "/data",
        { source: data.name, codes: CODES.join(","), start: iso(start), end: iso(end), limit: PAGE, cursor },
        abort.signal,
      );
      total += page.count;
      data.addRows(page.rows);
      state.dirty = true;
      cursor = page.next_cursor;
      if (!cursor) break;
      if (total >= maxPoints) {
        complete = false;
        break;
      }
    }
    if (complete && from !== null) data.addRows([], from);
  } catch (e) {
    if (e.name === "AbortError") return false;
    if (!(e instanceof ApiError)) throw e;
    complete = false;
  } finally {
    state.loading -= 1;
    state.aborts.delete(abort);
    updateRangeText(complete ? "" : "Not all of this range could be loaded: pick a shorter one.");
  }
  return complete;
}

/** What the WebSocket missed while it was down (or all new rows, while it cannot connect). */
async function catchUp(data) {
  if (!data || data !== state.data.get(state.rig)) return;
  const last = data.size ? data.t[data.size - 1] : session.now() - 3600;
  await loadRange(data, last, session.now() + 5, { from: null });
}

/** Makes sure the rows of [min, max] are loaded (the live hour is; zooming out loads more). */
async function ensureLoaded(min) {
  const data = state.data.get(state.rig);
  if (!data || state.loading) return;
  if (data.loadedFrom !== null && min >= data.loadedFrom) return;
  const until = data.loadedFrom ?? session.now();
  await loadRange(data, min, until);
}

// Live status ---------------------------------------------------------------------------------
const LIVE_TEXT = { idle: "Idle", connecting: "Connecting…", live: "Live", waiting: "Reconnecting", closed: "Offline" };

function setLive(s, detail) {
  const changed = state.liveState !== s;
  state.liveState = s;
  byId("live-status").dataset.state = s;
  updateLiveText(detail);
  if (changed) setText(byId("live-announce"), `Live data: ${LIVE_TEXT[s] || s}`);
}

function updateLiveText() {
  let text = LIVE_TEXT[state.liveState] || state.liveState;
  if (state.liveState === "waiting" && state.socket) text = `Reconnecting in ${Math.ceil(state.socket.retryIn)} s`;
  setText(byId("live-text"), text);
}

// Units ---------------------------------------------------------------------------------------
function unitSystem(data) {
  if (prefs.units === "metric" || prefs.units === "fps") return prefs.units;
  // Not chosen yet: the system the rig sends in.
  for (const code of CODES) {
    const sys = data && data.units[code] ? systemOf(data.units[code]) : null;
    if (sys) return sys;
  }
  return "fps";
}

function channelUnit(data, code, system) {
  const sent = data.units[code];
  const shown = targetUnit(code, sent, system);
  return { sent, shown, convert: converter(sent, shown) };
}

function formatValue(v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  let d = digits;
  if (d === undefined) {
    const a = Math.abs(v);
    d = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 1 : 2;
  }
  return v.toLocaleString(undefined, { minimumFractionDigits: d, maximumFractionDigits: d });
}

// Tiles ---------------------------------------------------------------------------------------
function buildDashboard() {
  if (state.tracks) return;
  const tiles = byId("tiles");
  for (const ch of CHANNELS) {
    const value = h("output", { class: "tile-value" }, "—");
    const unit = h("span", { class: "tile-unit" }, "");
    const age = h("span", { class: "tile-age" }, "no data");
    const tile = h(
      "section",
      { class: "tile", role: "group", "aria-label": ch.label, dataset: { tile: ch.name, code: ch.code, state: "empty" } },
      h("h2", { class: "tile-label" }, ch.label),
      h("div", { class: "tile-reading" }, value, unit),
      age,
    );
    tiles.append(tile);
    state.tiles.set(ch.code, { tile, value, unit, age, ch });
  }
  state.tracks = new Tracks(byId("tracks"), {
    onZoom: (min, max) => setWindow(min, max),
    onWheel: (at, factor) => zoom(factor, at),
    onReset: () => goLive(),
    onCursor: (idx) => {
      state.cursor = idx;
      drawLegends();
    },
    onDepthCursor: (idx) => {
      state.depthCursor = idx;
      drawLegends();
    },
  });
  state.quality = new QualityChart(byId("quality-chart"));
  rebuildCharts();
}

function drawTiles(data, system, now) {
  for (const { tile, value, unit, age, ch } of state.tiles.values()) {
    const latest = data ? data.latest[ch.code] : undefined;
    if (!latest) {
      setText(value, "—");
      setText(unit, data ? unitLabel(targetUnit(ch.code, data.units[ch.code], system)) : "");
      setText(age, "no data");
      tile.dataset.state = "empty";
      continue;
    }
    const { shown, convert } = channelUnit(data, ch.code, system);
    setText(value, latest.v === null ? "—" : formatValue(convert(latest.v), ch.digits));
    setText(unit, unitLabel(shown));
    const seconds = Math.max(0, now - latest.t);
    setText(age, latest.v === null ? `null · ${formatAge(seconds)} ago` : `${formatAge(seconds)} ago`);
    tile.dataset.state = latest.v === null ? "null" : seconds > STALE ? "stale" : "fresh";
  }
}

// Tracks --------------------------------------------------------------------------------------
function currentWindow(now) {
  const v = state.view;
  if (v.live) return [now - v.span, now + Math.max(2, v.span * 0.01)];
  return [v.min, v.max];
}

function drawTracks(data, system, now) {
  const [min, max] = currentWindow(now);
  const i0 = data ? Math.max(0, data.indexAt(min) - 1) : 0;
  const i1 = data ? Math.min(data.size, data.indexAt(max) + 1) : 0;
  const t = data ? data.t.slice(i0, i1) : [];
  const columns = {};
  const units = {};
  for (const code of CODES) {
    if (!data) {
      columns[code] = [];
      units[code] = "";
      continue;
    }
    const { shown, convert } = channelUnit(data, code, system);
    columns[code] = data.cols[code].slice(i0, i1).map(convert);
    units[code] = unitLabel(shown);
  }
  state.slice = { t, columns, units };
  TIME_TRACKS.forEach((def, k) => {
    state.tracks.time[k].setData([t, ...def.series.map((s) => columns[s.code])], min, max);
  });
  const { depth, series: depthSeries } = depthLog(t, columns, state.tracks.depth.plot.clientHeight || 400);
  state.depthSlice = { depth, series: depthSeries };
  let dmin;
  let dmax;
  if (depth.length) {
    const minSpan = system === "metric" ? 10 : 30;
    dmin = depth[0];
    dmax = depth[depth.length - 1];
    if (dmax - dmin < minSpan) dmin = dmax - minSpan;
    const pad = (dmax - dmin) * 0.03;
    dmin -= pad;
    dmax += pad;
  }
  state.tracks.depth.setData([depth, ...depthSeries], dmin, dmax);
  byId("tracks").dataset.points = String(t.length);
  byId("tracks").dataset.depthPoints = String(depth.length);
  drawLegends();
}

/**
 * The depth log: drilling parameters against hole depth. Only rows that make new hole count (the
 * hole depth grows), so connections and trips, when the depth stands still, do not pile up; they
 * are averaged per depth bin of about one pixel, as a mud log shows one value per depth.
 */
function depthLog(t, columns, pixels) {
  const hole = columns["0110"];
  const codes = DEPTH_TRACK.series.map((s) => s.code);
  const rows = [];
  let deepest = -Infinity;
  for (let i = 0; i < t.length; i += 1) {
    const d = hole[i];
    if (d === null || d === undefined || d <= deepest) continue;
    deepest = d;
    rows.push(i);
  }
  const depth = [];
  const series = codes.map(() => []);
  if (!rows.length) return { depth, series };
  const top = hole[rows[0]];
  const bin = Math.max((deepest - top) / Math.max(50, pixels), 1e-6);
  let k = 0;
  while (k < rows.length) {
    const start = Math.floor((hole[rows[k]] - top) / bin);
    const sums = codes.map(() => 0);
    const counts = codes.map(() => 0);
    let last = k;
    while (last < rows.length && Math.floor((hole[rows[last]] - top) / bin) === start) {
      codes.forEach((code, j) => {
        const v = columns[code][rows[last]];
        if (v !== null && v !== undefined) {
          sums[j] += v;
          counts[j] += 1;
        }
      });
      last += 1;
    }
    depth.push(hole[rows[last - 1]]);
    codes.forEach((code, j) => series[j].push(counts[j] ? sums[j] / counts[j] : null));
    k = last;
  }
  return { depth, series };
}

function drawLegends() {
  const slice = state.slice;
  if (!slice || !state.tracks) return;
  const at = (column, idx) => {
    if (idx !== null && idx !== undefined && idx < column.length) return column[idx];
    for (let i = column.length - 1; i >= 0; i -= 1) if (column[i] !== null && column[i] !== undefined) return column[i];
    return null;
  };
  TIME_TRACKS.forEach((def, k) => {
    const texts = def.series.map((s) => formatValue(at(slice.columns[s.code], state.cursor), DIGITS[s.code]));
    state.tracks.time[k].setLegend(texts, def.series.map((s) => slice.units[s.code]));
  });
  const d = state.depthSlice;
  if (d) {
    const texts = DEPTH_TRACK.series.map((s, j) => formatValue(at(d.series[j], state.depthCursor), DIGITS[s.code]));
    state.tracks.depth.setLegend(texts, DEPTH_TRACK.series.map((s) => slice.units[s.code]));
  }
}

function updateRangeText(message) {
  const v = state.view;
  let text;
  if (state.loading) text = "Loading stored data…";
  else if (message) text = message;
  else if (v.live) text = `Last ${formatSpan(v.span)}, following live`;
  else text = `${new Date(v.min * 1000).toLocaleString()} – ${formatClock(v.max)}`;
  setText(byId("range-text"), text);
  const live = byId("go-live");
  live.setAttribute("aria-pressed", String(v.live));
  for (const button of document.querySelectorAll(".toolbar [data-span]")) {
    button.setAttribute("aria-pressed", String(v.live && Number(button.dataset.span) === v.span));
  }
}

function formatSpan(seconds) {
  return seconds >= 3600 ? `${+(seconds / 3600).toFixed(1)} h` : `${Math.round(seconds / 60)} min`;
}

function setWindow(min, max) {
  const now = session.now();
  let span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, max - min));
  const center = (min + max) / 2;
  min = center - span / 2;
  max = center + span / 2;
  if (max >= now) {
    // Reaching the present means following it again.
    state.view = { live: true, span: Math.round(span), min: 0, max: 0 };
  } else {
    state.view = { live: false, span, min, max };
  }
  state.cursor = null;
  state.dirty = true;
  updateRangeText();
  ensureLoaded(state.view.live ? now - span : min).then(() => {
    state.dirty = true;
  });
}

function zoom(factor, at) {
  const now = session.now();
  const [min, max] = currentWindow(now);
  const pivot = at ?? (min + max) / 2;
  if (state.view.live && at === undefined) {
    state.view.span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, state.view.span * factor));
    setWindow(now - state.view.span, now);
    return;
  }
  setWindow(pivot - (pivot - min) * factor, pivot + (max - pivot) * factor);
}

function pan(direction) {
  const [min, max] = currentWindow(session.now());
  const step = (max - min) * 0.5 * direction;
  setWindow(min + step, max + step);
}

function goLive(span) {
  state.view = { live: true, span: span || state.view.span || 3600, min: 0, max: 0 };
  setWindow(session.now() - state.view.span, session.now());
}

function localInput(seconds) {
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function onRangeSubmit(event) {
  event.preventDefault();
  const from = Date.parse(byId("range-from").value);
  const to = Date.parse(byId("range-to").value);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
    updateRangeText("Pick a start before the end.");
    return;
  }
  byId("goto").open = false;
  setWindow(from / 1000, to / 1000);
}

function onTracksKey(event) {
  if (event.target.closest("input, select, textarea")) return;
  const keys = {
    "[": () => pan(-1),
    ArrowUp: () => pan(-1),
    "]": () => pan(1),
    ArrowDown: () => pan(1),
    "+": () => zoom(0.5),
    "=": () => zoom(0.5),
    "-": () => zoom(2),
    l: () => goLive(),
    L: () => goLive(),
  };
  const action = keys[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

// Data quality --------------------------------------------------------------------------------
function drawQuality(data, now) {
  if (!data) return;
  const q = data.quality(now, 60);
  setText(byId("q-gaps"), String(q.gaps));
  setText(byId("q-longest"), q.gaps ? `${formatAge(q.longest)} at ${formatClock(q.lastGapAt)}` : "—");
  setText(byId("q-nulls"), `${q.nullsLast} · avg ${q.nullsAvg.toFixed(1)}`);
  setText(byId("q-errors"), `${q.errorsLast} · avg ${q.errorsAvg.toFixed(1)}`);
  setText(byId("q-rows"), String(q.rowsLast));
  const since = q.errorsSince && now - q.errorsSince < 3600 ? `errors counted since ${formatClock(q.errorsSince)}` : "";
  setText(byId("q-note"), since);
  byId("q-gaps").dataset.level = q.gaps ? "warn" : "ok";
  byId("q-errors").dataset.level = q.errorsLast ? "bad" : "ok";
  byId("q-nulls").dataset.level = q.nullsLast ? "warn" : "ok";
  const minutes = q.buckets.map((b) => b.minute);
  state.quality.setData([minutes, q.buckets.map((b) => b.nulls), q.buckets.map((b) => b.errors), q.buckets.map((b, k) => (k === q.buckets.length - 1 ? null : b.rows))]);
}

// The loop ------------------------------------------------------------------------------------
function tick() {
  if (!state.started) return;
  renderRigs();
  updateLiveText();
  if (!state.loading) updateRangeText();
  const data = state.data.get(state.rig);
  // While the WebSocket is not live, fetch what arrived meanwhile (witskit serve never has one).
  if (data && state.liveState !== "live" && !state.loading && Math.floor(Date.now() / 1000) % 5 === 0) catchUp(data);
  state.dirty = true;
}

function frameLoop() {
  if (!state.started) {
    state.looping = false;
    return;
  }
  if (state.dirty && !byId("dashboard-view").hidden) {
    state.dirty = false;
    const data = state.data.get(state.rig);
    const now = session.now();
    const system = unitSystem(data);
    syncUnitRadios(system);
    drawTiles(data, system, now);
    drawTracks(data, system, now);
    drawQuality(data, now);
  }
  requestAnimationFrame(frameLoop);
}

function syncUnitRadios(system) {
  const radio = byId(system === "metric" ? "units-metric" : "units-fps");
  if (!radio.checked) radio.checked = true;
}

// Start ---------------------------------------------------------------------------------------
async function boot() {
  const fragment = session.takeFragment();
  if (fragment.rig) prefs.rig = fragment.rig;
  if (fragment.units === "metric" || fragment.units === "fps") prefs.units = fragment.units;
  if (THEMES.includes(fragment.theme)) prefs.theme = fragment.theme;
  prefs.save();
  applyTheme();
  byId("theme-toggle").addEventListener("click", () => {
    prefs.theme = THEMES[(THEMES.indexOf(prefs.theme) + 1) % THEMES.length];
    prefs.save();
    applyTheme();
  });
  window.matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => {
    if (prefs.theme === "auto") rebuildCharts();
  });
  for (const radio of document.querySelectorAll('input[name="units"]')) {
    radio.addEventListener("change", () => {
      prefs.units = radio.value;
      prefs.save();
      state.dirty = true;
    });
  }
  byId("login-form").addEventListener("submit", onLogin);
  byId("logout").addEventListener("click", () => {
    session.logout();
    prefs.rig = null;
    prefs.save();
    showLogin();
  });
  document.addEventListener("click", navigate);
  window.addEventListener("popstate", () => state.started && route());
  for (const button of document.querySelectorAll(".toolbar [data-span]")) {
    button.addEventListener("click", () => goLive(Number(button.dataset.span)));
  }
  byId("pan-earlier").addEventListener("click", () => pan(-1));
  byId("pan-later").addEventListener("click", () => pan(1));
  byId("zoom-in").addEventListener("click", () => zoom(0.5));
  byId("zoom-out").addEventListener("click", () => zoom(2));
  byId("go-live").addEventListener("click", () => goLive());
  byId("range-form").addEventListener("submit", onRangeSubmit);
  byId("goto").addEventListener("toggle", () => {
    if (!byId("goto").open) return;
    // Start from the range on screen, in local time as the inputs want it.
    const [min, max] = currentWindow(session.now());
    byId("range-from").value = localInput(min);
    byId("range-to").value = localInput(max);
    byId("range-from").focus();
  });
  byId("tracks").addEventListener("keydown", onTracksKey);
  session.addEventListener("expired", (event) => showLogin(event.detail));
  try {
    await loadUnits(document.body.dataset.unitsUrl);
  } catch (e) {
    // Without the table values are still shown, in the units the rig sends.
    console.warn(e.message);
  }
  if (session.active) await startApp();
  else showLogin();
}

boot();
