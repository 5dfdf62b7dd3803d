// The dashboard: sign-in, the rig picker, live tiles, tracks, data quality, units and theme.
//
// Data flow: picking a rig loads its last hour from /api/v1/data and subscribes to
// /api/v1/live?source=...; frames land in a RigData (store.js) and the screen is redrawn at most
// once per animation frame. Ages and the live window move once a second. While the WebSocket is
// down the dashboard polls /api/v1/data for what it missed, so nothing is lost across a reconnect
// and a server that does not ingest (witskit serve) still updates.
//
// Views up to RAW_SPAN draw every stored point: near the present by extending the live rows back,
// further back from a window of rows of their own. Longer views, up to the whole stored range of
// the rig, draw buckets (min, max and mean per pixel row) from /api/v1/data/series (series.js),
// asked for once the view has settled.

import { ApiError, LiveSocket, api, session } from "./api.js";
import { renderAdmin } from "./admin.js";
import { QualityChart, TIME_TRACKS, DEPTH_TRACK, Tracks, palette } from "./charts.js";
import { byId, formatAge, formatClock, h, setText } from "./dom.js";
import { liveWindow } from "./scales.js";
import { SeriesData, planSeries } from "./series.js";
import { CHANNELS, CODES, DIGITS, RigData } from "./store.js";
import { converter, loadUnits, systemOf, targetUnit, unitLabel } from "./units.js";

const PREFS_KEY = "witskit.prefs";
/** Up to this span (seconds) the tracks draw every stored point; longer views draw buckets. */
const RAW_SPAN = 2 * 3600;
/** Raw rows this close to the present extend the live rows; older views get a window of their own. */
const RECENT = 6 * 3600;
const MIN_SPAN = 60;
/** How far out one can zoom while the rig's stored range is not known yet. */
const MAX_SPAN = 10 * 366 * 86400;
/** The longest span of the range buttons (12 h), which works whatever is stored. */
const LONGEST_BUTTON = 12 * 3600;
/** A series is asked for once the view has been still this long (ms): a spin of the wheel asks once. */
const SERIES_DEBOUNCE = 250;
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
  series: null, // SeriesData: the buckets of the rig, for views longer than RAW_SPAN
  seriesWanted: null, // {key, abort}: the series request in flight
  seriesTimer: 0,
  past: null, // {rig, from, to, data: RigData}: the raw rows of a view far from the present
  extending: false, // the live rows are being extended back...
  wantFrom: null, // ...and then to here
  looping: false, // the animation-frame loop runs (one at most, across sign-out and sign-in)
};

// Theme ---------------------------------------------------------------------------------------
const THEMES = ["dark", "light", "auto"];

function applyTheme() {
  const theme = THEMES.includes(prefs.theme) ? prefs.theme : "dark";
  const systemLight = window.matchMedia("(prefers-color-scheme: light)").matches;
  // The stylesheet knows two palettes: "auto" is whichever the system prefers right now.
  document.documentElement.dataset.theme = theme === "auto" ? (systemLight ? "light" : "dark") : theme;
  const button = byId("theme-toggle");
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  button.textContent = theme === "auto" ? "Auto" : theme === "dark" ? "Dark" : "Light";
  button.setAttribute("aria-label", `Theme: ${theme}. Switch to ${next}`);
  rebuildCharts();
}

function rebuildCharts() {
  if (!state.tracks) return;
  const theme = palette();
  state.tracks.build(theme);
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
  syncSidebarToggle();
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
  clearTimeout(state.seriesTimer);
  state.series = null;
  state.past = null;
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

// The side panel ------------------------------------------------------------------------------
// Wide screens show the rig list and data quality in a column; narrower ones (the stylesheet
// decides, at 1100 px) give the tracks the whole width and slide the panel over them on demand.
// #layout's data-sidebar is "open" or "closed" once the user chose, absent until then.

function sidebarShown() {
  return getComputedStyle(byId("sidebar")).display !== "none";
}

/** True where the panel covers the tracks rather than sitting beside them. */
function sidebarOverlays() {
  return getComputedStyle(byId("sidebar")).position === "absolute";
}

function syncSidebarToggle() {
  byId("sidebar-toggle").setAttribute("aria-expanded", String(sidebarShown()));
}

function setSidebar(open) {
  byId("layout").dataset.sidebar = open ? "open" : "closed";
  syncSidebarToggle();
  if (open && sidebarOverlays()) {
    const rig = byId("sidebar").querySelector('.rig[aria-pressed="true"]') || byId("sidebar").querySelector(".rig");
    if (rig) rig.focus();
  }
  state.dirty = true;
}

/** Closes the panel where it covers the tracks (after a rig is picked, on Escape, on a click beside it). */
function closeSidebarOverlay(returnFocus = false) {
  if (!sidebarShown() || !sidebarOverlays()) return;
  setSidebar(false);
  if (returnFocus) byId("sidebar-toggle").focus();
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
      // Several rigs and none picked: show the list, wherever it is kept.
      else if (state.sources.length > 1 && !byId("layout").dataset.sidebar && !sidebarShown()) setSidebar(true);
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
        {
          type: "button",
          class: "rig",
          "aria-pressed": "false",
          onclick: () => {
            selectRig(source.name);
            closeSidebarOverlay();
          },
        },
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
  clearTimeout(state.seriesTimer);
  state.series = null;
  state.past = null;
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
  // The last hour (at most RAW_SPAN) as rows: the data-quality panel and the live edge need them.
  const now = session.now();
  await loadRange(data, now - Math.min(Math.max(state.view.span, 3600), RAW_SPAN), now);
  if (state.rig === name) requestData();
  state.dirty = true;
}

// Loading stored data -------------------------------------------------------------------------
function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

/** Fetches stored points of [start, end) page by page into `data`. Returns false when cut short. */
async function loadRange(data, start, end, { maxPoints = MAX_POINTS, from = start, abort = new AbortController() } = {}) {
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

/** Extends the live rows back to `min` (views near the present), one load at a time. */
async function extendLive(data, min) {
  state.wantFrom = state.wantFrom === null ? min : Math.min(state.wantFrom, min);
  if (state.extending) return;
  state.extending = true;
  try {
    while (state.wantFrom !== null && data === state.data.get(state.rig)) {
      const want = state.wantFrom;
      state.wantFrom = null;
      if (data.loadedFrom !== null && want >= data.loadedFrom) continue;
      if (!(await loadRange(data, want, data.loadedFrom ?? session.now()))) break;
    }
  } finally {
    state.extending = false;
    state.wantFrom = null;
    state.dirty = true;
  }
}

/** The held past window, when it has the rows of [min, max]. */
function pastFor(min, max) {
  const past = state.past;
  return past && past.rig === state.rig && past.from <= min && past.to >= Math.min(max, session.now()) ? past : null;
}

/**
 * Makes sure the rows of [min, max] are loaded: near the present by extending the live rows back,
 * further back as a window of their own with half the span to spare on each side (a pan or a zoom
 * in needs no new request).
 */
function ensureRaw(min, max) {
  const data = state.data.get(state.rig);
  if (!data || (data.loadedFrom !== null && min >= data.loadedFrom) || pastFor(min, max)) return;
  const now = session.now();
  if (now - min <= RECENT) {
    extendLive(data, min);
    return;
  }
  if (state.past) state.past.abort.abort();
  const span = max - min;
  const rows = new RigData(data.name);
  rows.units = data.units; // the units of stored rows are those of the rig (from /latest)
  const past = { rig: data.name, from: min - span / 2, to: Math.min(now, max + span / 2), data: rows, abort: new AbortController() };
  state.past = past;
  loadRange(rows, past.from, past.to, { abort: past.abort }).then(() => {
    state.dirty = true;
  });
}

/** Loads what the view needs: rows up to RAW_SPAN, buckets (once the view has settled) past it. */
function requestData() {
  const [min, max] = currentWindow(session.now());
  if (max - min > RAW_SPAN) scheduleSeries();
  else ensureRaw(min, max);
}

/** The rig's stored range in seconds ({first, last}; last may be null), or null before it is known. */
function sourceBounds() {
  const source = state.sources.find((s) => s.name === state.rig);
  const first = source && source.first_time ? Date.parse(source.first_time) / 1000 : NaN;
  if (!Number.isFinite(first)) return null;
  let last = source.last_time ? Date.parse(source.last_time) / 1000 : null;
  const data = state.data.get(state.rig);
  if (data && data.lastFrame && (last === null || data.lastFrame > last)) last = data.lastFrame;
  return { first, last };
}

/** Buckets a time track has room for: about one per pixel of its height. */
function trackRows() {
  const height = state.tracks ? state.tracks.time[0].plot.clientHeight : 0;
  return Math.min(2000, Math.max(200, Math.round(height || 600)));
}

function scheduleSeries(delay = SERIES_DEBOUNCE) {
  clearTimeout(state.seriesTimer);
  state.seriesTimer = setTimeout(loadSeries, delay);
}

/** Fetches the buckets of the view from /api/v1/data/series, unless those held cover it. */
async function loadSeries() {
  const data = state.data.get(state.rig);
  if (!data || !state.started) return;
  const now = session.now();
  const [min, max] = currentWindow(now);
  if (max - min <= RAW_SPAN) return;
  const plan = planSeries(min, max, trackRows(), now, sourceBounds());
  const held = state.series;
  if ((held && held.rig === data.name && held.covers(plan, min)) || plan.points < 1) {
    tailFrom(data, held && held.rig === data.name ? held.end : plan.end);
    return;
  }
  const key = `${data.name} ${plan.width} ${plan.start} ${plan.end}`;
  if (state.seriesWanted && state.seriesWanted.key === key) return;
  if (state.seriesWanted) state.seriesWanted.abort.abort();
  const wanted = { key, abort: new AbortController() };
  state.seriesWanted = wanted;
  state.aborts.add(wanted.abort);
  state.loading += 1;
  updateRangeText();
  let message = "";
  try {
    const query = { source: data.name, codes: CODES.join(","), start: iso(plan.start), end: iso(plan.end), points: plan.points };
    const body = await api.get("/data/series", query, wanted.abort.signal);
    if (state.rig === data.name) {
      state.series = new SeriesData(data.name, plan, body, CODES);
      tailFrom(data, plan.end);
    }
  } catch (e) {
    if (e.name !== "AbortError") {
      if (!(e instanceof ApiError)) throw e;
      message = `This range could not be loaded: ${e.message}`;
    }
  } finally {
    state.loading -= 1;
    state.aborts.delete(wanted.abort);
    if (state.seriesWanted === wanted) state.seriesWanted = null;
    updateRangeText(message);
    state.dirty = true;
  }
}

/** Rows from `t` on, for the buckets after a series: the live rows, reaching back when needed. */
function tailFrom(data, t) {
  const now = session.now();
  if (t < now && now - t <= RECENT && (data.loadedFrom === null || t < data.loadedFrom)) extendLive(data, t);
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
/**
 * The time range on screen. A live view is the last `span` seconds, or, for a rig whose first
 * frame is younger than that (a new feed), from its first frame on, so the data fills the track.
 */
function currentWindow(now) {
  const v = state.view;
  if (v.live) {
    const bounds = sourceBounds();
    return liveWindow(now, v.span, bounds ? bounds.first : null);
  }
  return [v.min, v.max];
}

/** True while a live view starts at the rig's first frame rather than `span` ago. */
function startsAtFirstFrame(now) {
  return state.view.live && currentWindow(now)[0] > now - state.view.span;
}

function drawTracks(data, system, now) {
  const [min, max] = currentWindow(now);
  const held = state.series;
  const buckets = max - min > RAW_SPAN && held && held.rig === state.rig ? held : null;
  let frame;
  if (buckets) {
    frame = buckets.frame(min, max, CODES, data);
  } else {
    // The live rows when they reach back far enough, else the window of older rows.
    const rows = data && data.loadedFrom !== null && min >= data.loadedFrom ? data : (pastFor(min, max) || { data }).data;
    const i0 = rows ? Math.max(0, rows.indexAt(min) - 1) : 0;
    const i1 = rows ? Math.min(rows.size, rows.indexAt(max) + 1) : 0;
    frame = { t: rows ? rows.t.slice(i0, i1) : [], line: {}, lo: null, hi: null };
    for (const code of CODES) frame.line[code] = rows ? rows.cols[code].slice(i0, i1) : [];
  }
  const { t } = frame;
  const columns = {};
  const lows = {};
  const highs = {};
  const units = {};
  const shownUnits = {};
  for (const code of CODES) {
    if (!data) {
      columns[code] = [];
      units[code] = "";
      continue;
    }
    const { shown, convert } = channelUnit(data, code, system);
    shownUnits[code] = shown;
    columns[code] = frame.line[code].map(convert);
    if (frame.lo) {
      lows[code] = frame.lo[code].map(convert);
      highs[code] = frame.hi[code].map(convert);
    }
    units[code] = unitLabel(shown);
  }
  state.slice = { t, columns, units };
  TIME_TRACKS.forEach((def, k) => {
    const bands = frame.lo && data ? def.series.map((s) => [highs[s.code], lows[s.code]]) : null;
    state.tracks.time[k].setUnits(def.series.map((s) => shownUnits[s.code]));
    state.tracks.time[k].setColumns(t, def.series.map((s) => columns[s.code]), bands, min, max);
  });
  // Over buckets, the depth log goes by each bucket's deepest hole depth.
  const depthColumns = frame.hi && data ? { ...columns, "0110": highs["0110"] } : columns;
  const { depth, series: depthSeries } = depthLog(t, depthColumns, state.tracks.depth.plot.clientHeight || 400);
  state.depthSlice = { depth, series: depthSeries };
  let dmin;
  let dmax;
  if (depth.length) {
    const minSpan = system === "metric" ? 10 : 30;
    dmin = depth[0];
    dmax = depth[depth.length - 1];
    // Less hole than that (a new feed): it starts at the top and is drawn downward, as on a log.
    if (dmax - dmin < minSpan) dmax = dmin + minSpan;
    const pad = (dmax - dmin) * 0.03;
    dmin -= pad;
    dmax += pad;
  }
  state.tracks.depth.setUnits(DEPTH_TRACK.series.map((s) => shownUnits[s.code]));
  state.tracks.depth.setColumns(depth, depthSeries, null, dmin, dmax);
  // What is on screen, for tests and for a look in the inspector.
  const tracks = byId("tracks");
  const scale = state.tracks.time[0].u ? state.tracks.time[0].u.scales.x : { min, max };
  tracks.dataset.points = String(t.length);
  tracks.dataset.depthPoints = String(depth.length);
  tracks.dataset.mode = buckets ? "series" : "raw";
  tracks.dataset.bucket = buckets ? String(buckets.width) : "0";
  tracks.dataset.viewStart = String(Math.round(scale.min ?? min));
  tracks.dataset.viewEnd = String(Math.round(scale.max ?? max));
  tracks.dataset.dataStart = t.length ? String(Math.round(t[0])) : "";
  tracks.dataset.dataEnd = t.length ? String(Math.round(t[t.length - 1])) : "";
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
  else if (v.live && startsAtFirstFrame(session.now())) text = `Since the first frame at ${formatClock(sourceBounds().first)}`;
  else if (v.live) text = `Last ${formatSpan(v.span)}, following live`;
  else if (v.span > 86400) text = `${new Date(v.min * 1000).toLocaleString()} – ${new Date(v.max * 1000).toLocaleString()}`;
  else text = `${new Date(v.min * 1000).toLocaleString()} – ${formatClock(v.max)}`;
  const held = state.series;
  if (!state.loading && !message && v.span > RAW_SPAN && held && held.rig === state.rig) {
    text += ` · min–max per ${formatSpan(held.width)}`;
  }
  setText(byId("range-text"), text);
  const live = byId("go-live");
  live.setAttribute("aria-pressed", String(v.live));
  for (const button of document.querySelectorAll(".toolbar [data-span]")) {
    button.setAttribute("aria-pressed", String(v.live && Number(button.dataset.span) === v.span));
  }
}

function formatSpan(seconds) {
  if (seconds >= 2 * 86400) return `${+(seconds / 86400).toFixed(1)} d`;
  if (seconds >= 3600) return `${+(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${+(seconds / 60).toFixed(1)} min`;
  return `${Math.round(seconds)} s`;
}

/**
 * [min, max] kept sensible: at least MIN_SPAN, at most the rig's stored range (its first frame to
 * now, and a little; the range buttons always work), and never wholly before its first frame.
 */
function clampWindow(min, max, now) {
  const bounds = sourceBounds();
  const longest = bounds ? Math.max(LONGEST_BUTTON, (now - bounds.first) * 1.05) : MAX_SPAN;
  const span = Math.min(longest, Math.max(MIN_SPAN, max - min));
  // A view that reaches the present keeps its end there (it follows live); any other its centre.
  let lo = max >= now - 1 ? max - span : (min + max) / 2 - span / 2;
  if (bounds && lo < bounds.first - span) lo = bounds.first - span;
  return [lo, lo + span];
}

function setWindow(min, max) {
  const now = session.now();
  [min, max] = clampWindow(min, max, now);
  const span = max - min;
  if (max >= now - 1) {
    // Reaching the present (to the second: the clock moved while this ran) means following it again.
    state.view = { live: true, span: Math.round(span), min: 0, max: 0 };
  } else {
    state.view = { live: false, span, min, max };
  }
  state.cursor = null;
  state.dirty = true;
  updateRangeText();
  requestData();
}

function zoom(factor, at) {
  const now = session.now();
  const [min, max] = currentWindow(now);
  const pivot = at ?? (min + max) / 2;
  if (state.view.live && at === undefined) {
    // From what is on screen: a new feed's view is shorter than its span.
    setWindow(now - Math.min(state.view.span, now - min) * factor, now);
    return;
  }
  setWindow(pivot - (pivot - min) * factor, pivot + (max - pivot) * factor);
}

function pan(direction) {
  const now = session.now();
  const [min, max] = currentWindow(now);
  const step = (max - min) * 0.5 * direction;
  let end = max + step;
  // Earlier always leaves the present, even from a new feed's view (it reaches past now).
  if (direction < 0 && end >= now - 1) end = now - 2;
  setWindow(end - (max - min), end);
}

function goLive(span) {
  state.view = { live: true, span: span || state.view.span || 3600, min: 0, max: 0 };
  setWindow(session.now() - state.view.span, session.now());
}

/** Everything stored for the rig, following live when its last frame is recent. */
function goAll() {
  const bounds = sourceBounds();
  if (!bounds) return;
  const now = session.now();
  const last = bounds.last ?? now;
  const pad = Math.max(60, (last - bounds.first) * 0.02);
  if (now - last < 300) goLive(now - bounds.first + pad);
  else setWindow(bounds.first - pad, last + pad);
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
  // The panel may be hidden: its button says when the feed has a problem.
  byId("sidebar-toggle").dataset.level = q.errorsLast ? "bad" : q.gaps || q.nullsLast ? "warn" : "ok";
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
  // A live view of buckets asks for the newer ones now and then (series.js: SeriesData.covers).
  if (data && state.view.live && state.view.span > RAW_SPAN && !state.seriesWanted) loadSeries();
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
    if (prefs.theme === "auto") applyTheme();
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
  byId("sidebar-toggle").addEventListener("click", () => setSidebar(!sidebarShown()));
  byId("main").addEventListener("pointerdown", () => closeSidebarOverlay());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebarShown() && sidebarOverlays()) closeSidebarOverlay(true);
  });
  window.matchMedia("(max-width: 1100px)").addEventListener("change", syncSidebarToggle);
  window.addEventListener("popstate", () => state.started && route());
  for (const button of document.querySelectorAll(".toolbar [data-span]")) {
    button.addEventListener("click", () => (button.dataset.span === "all" ? goAll() : goLive(Number(button.dataset.span))));
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
