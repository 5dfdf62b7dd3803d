// The dashboard: sign-in, live tiles, tracks, data quality, units and theme, and what ties the
// modules below together.
//
// Data flow: picking a rig (rigs.js) opens it in the Loader (loader.js), which subscribes to
// /api/v1/live?source=... and loads its stored rows; frames land in a RigData (store.js) and the
// screen is redrawn at most once per animation frame. Ages and the live window move once a
// second. While the WebSocket is down the dashboard polls /api/v1/data for what it missed, so
// nothing is lost across a reconnect and a server that does not ingest (witskit serve) still
// updates. Zoom, pan and the range buttons make a new view (view.js); the Loader then fetches
// what that view needs: rows up to RAW_SPAN, buckets (series.js) past it.

import { ApiError, LiveSocket, api, session } from "./api.js";
import { renderAdmin } from "./admin.js";
import { onAlarmMessage, remarkTracks, startAlarms, stopAlarms } from "./alarmbar.js";
import { QualityChart, TIME_TRACKS, DEPTH_TRACK, Tracks, palette } from "./charts.js";
import { byId, formatAge, formatClock, h, setText } from "./dom.js";
import { Loader } from "./loader.js";
import { AnalyticsPanels, stateLegend } from "./panels.js";
import { LEGEND_TEXT, formatReading, readingAt } from "./readings.js";
import { autoPick, pollDelay, renderRigs, rigBounds } from "./rigs.js";
import { CHANNELS, CHANNEL_OF, CODES } from "./store.js";
import { converter, loadUnits, systemOf, targetUnit, unitLabel } from "./units.js";
import {
  DEFAULT_SPAN,
  RAW_SPAN,
  allView,
  currentWindow,
  followView,
  liveView,
  localInput,
  panView,
  rangeText,
  windowView,
  zoomView,
} from "./view.js";

const PREFS_KEY = "witskit.prefs";
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

// What is on screen. The view is a value from view.js, replaced (never edited) when it changes;
// the rig on screen and everything loaded for it belong to `loader`.
const state = {
  me: null,
  started: false,
  sources: [], // the body of /api/v1/sources, polled
  sourcesTimer: 0,
  liveState: "idle",
  view: liveView(),
  tracks: null,
  quality: null,
  analytics: null, // the rig-state strip, the KPI panel and the quality issues (panels.js)
  tiles: new Map(),
  dirty: true,
  drawn: -1,
  cursor: null,
  depthCursor: null,
  slice: null, // the columns drawn, for the legends
  depthSlice: null,
  timers: [],
  looping: false, // the animation-frame loop runs (one at most, across sign-out and sign-in)
};

const loader = new Loader({
  api,
  isApiError: (e) => e instanceof ApiError,
  openLive: (name, handlers) => new LiveSocket(name, handlers),
  now: () => session.now(),
  viewport: (now) => {
    const bounds = sourceBounds();
    const [min, max] = currentWindow(state.view, now, bounds);
    return { min, max, bounds };
  },
  trackRows: () => trackRows(),
  onChange: () => {
    state.dirty = true;
  },
  onProgress: (message) => updateRangeText(message),
  onLive: (s, detail) => setLive(s, detail),
  onAlarm: (message) => onAlarmMessage(message),
});

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
  startAlarms(me, () => loader.rig);
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
  loader.stop();
  stopAlarms();
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
    drawRigs();
    if (!loader.rig) {
      const pick = autoPick(state.sources, prefs.rig);
      if (pick) selectRig(pick);
      // Several rigs and none picked: show the list, wherever it is kept.
      else if (state.sources.length > 1 && !byId("layout").dataset.sidebar && !sidebarShown()) setSidebar(true);
    }
  } catch (e) {
    if (!session.active) return;
  }
  if (state.started) state.sourcesTimer = setTimeout(pollSources, pollDelay(state.sources));
}

function drawRigs() {
  byId("rig-empty").hidden = state.sources.length > 0;
  renderRigs(byId("rig-list"), state.sources, {
    selected: loader.rig,
    dataOf: (name) => loader.data.get(name),
    now: session.now(),
    onPick: (name) => {
      selectRig(name);
      closeSidebarOverlay();
    },
  });
}

/** The rig on screen as /api/v1/sources lists it (undefined until the list has it). */
function rigSource() {
  return state.sources.find((s) => s.name === loader.rig);
}

/** The rig's stored range in seconds ({first, last}), or null before it is known. */
function sourceBounds() {
  return rigBounds(rigSource(), loader.current());
}

async function selectRig(name) {
  if (loader.rig === name) return;
  const data = loader.open(name);
  remarkTracks();
  prefs.rig = name;
  prefs.save();
  setText(byId("rig-title"), name);
  document.title = `${name} · WitsKit`;
  byId("pick-hint").hidden = true;
  state.view = liveView(state.view.span || DEFAULT_SPAN);
  state.cursor = null;
  drawRigs();
  await loader.loadStart(data, state.view.span);
  if (loader.rig === name) loader.request();
  state.dirty = true;
}

/** Buckets a time track has room for: about one per pixel of its height. */
function trackRows() {
  const height = state.tracks ? state.tracks.time[0].plot.clientHeight : 0;
  return Math.min(2000, Math.max(200, Math.round(height || 600)));
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
  if (state.liveState === "waiting" && loader.socket) text = `Reconnecting in ${Math.ceil(loader.socket.retryIn)} s`;
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

/** Sets or removes the title (the whole of a shortened text reading). */
function setTitle(el, title) {
  if (title) {
    if (el.getAttribute("title") !== title) el.setAttribute("title", title);
  } else if (el.hasAttribute("title")) {
    el.removeAttribute("title");
  }
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
  state.analytics = new AnalyticsPanels({
    strip: byId("state-strip"),
    kpi: byId("kpi-panel"),
    issues: byId("quality-issues"),
    plotOf: () => (state.tracks.time[0] ? state.tracks.time[0].plot : null),
    api,
  });
  byId("state-legend").append(stateLegend());
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
    const reading = formatReading(latest.v, ch, { convert });
    const text = reading.kind === "text";
    setText(value, reading.text);
    setTitle(value, reading.title);
    // A text reading is not in the unit: none is shown beside it.
    setText(unit, text ? "" : unitLabel(shown));
    const seconds = Math.max(0, now - latest.t);
    const note = latest.v === null ? "null · " : text ? "text · " : "";
    setText(age, `${note}${formatAge(seconds)} ago`);
    tile.dataset.state = latest.v === null ? "null" : seconds > STALE ? "stale" : "fresh";
    tile.dataset.kind = reading.kind;
  }
}

// Tracks --------------------------------------------------------------------------------------
/** The time range on screen (view.js: currentWindow). */
function onScreen(now) {
  return currentWindow(state.view, now, sourceBounds());
}

function drawTracks(data, system, now) {
  const [min, max] = onScreen(now);
  const held = loader.heldSeries();
  const buckets = max - min > RAW_SPAN && held ? held : null;
  let frame;
  if (buckets) {
    frame = buckets.frame(min, max, CODES, data);
  } else {
    // The live rows when they reach back far enough, else the window of older rows.
    const rows = data && data.loadedFrom !== null && min >= data.loadedFrom ? data : (loader.pastFor(min, max) || { data }).data;
    const i0 = rows ? Math.max(0, rows.indexAt(min) - 1) : 0;
    const i1 = rows ? Math.min(rows.size, rows.indexAt(max) + 1) : 0;
    frame = { t: rows ? rows.t.slice(i0, i1) : [], line: {}, lo: null, hi: null, textAt: null };
    for (const code of CODES) frame.line[code] = rows ? rows.cols[code].slice(i0, i1) : [];
    // Text readings are gaps in the lines; the legends look them up (buckets have none).
    if (rows) frame.textAt = (code, i) => rows.textAt(code, i0 + i);
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
  state.slice = { t, columns, units, textAt: frame.textAt, means: Boolean(frame.lo) };
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
  const show = (v, code, sent) => formatReading(v, CHANNEL_OF[code], { max: LEGEND_TEXT, sent });
  TIME_TRACKS.forEach((def, k) => {
    const readings = def.series.map((s) => {
      const textAt = slice.textAt ? (i) => slice.textAt(s.code, i) : null;
      return show(readingAt(slice.columns[s.code], textAt, state.cursor), s.code, !slice.means);
    });
    const units = def.series.map((s, j) => (readings[j].kind === "text" ? "" : slice.units[s.code]));
    state.tracks.time[k].setLegend(readings.map((r) => r.text), units, readings.map((r) => r.title));
  });
  const d = state.depthSlice;
  if (d) {
    // Means per depth step, not values the rig sent.
    const texts = DEPTH_TRACK.series.map((s, j) => show(readingAt(d.series[j], null, state.depthCursor), s.code, false).text);
    state.tracks.depth.setLegend(texts, DEPTH_TRACK.series.map((s) => slice.units[s.code]));
  }
}

function updateRangeText(message) {
  const v = state.view;
  const held = loader.heldSeries();
  const options = { loading: loader.loading > 0, message, bucket: held ? held.width : null };
  setText(byId("range-text"), rangeText(v, session.now(), sourceBounds(), options));
  const live = byId("go-live");
  live.setAttribute("aria-pressed", String(v.live));
  for (const button of document.querySelectorAll(".toolbar [data-span]")) {
    button.setAttribute("aria-pressed", String(v.live && Number(button.dataset.span) === v.span));
  }
}

/** Shows `view` (from view.js): the cursor goes, the tracks redraw and what it needs is loaded. */
function showView(view) {
  state.view = view;
  state.cursor = null;
  state.dirty = true;
  updateRangeText();
  loader.request();
}

function setWindow(min, max) {
  showView(windowView(min, max, session.now(), sourceBounds()));
}

function zoom(factor, at) {
  showView(zoomView(state.view, factor, at, session.now(), sourceBounds()));
}

function pan(direction) {
  showView(panView(state.view, direction, session.now(), sourceBounds()));
}

function goLive(span) {
  showView(followView(state.view, span, session.now(), sourceBounds()));
}

/** Everything stored for the rig, following live when its last frame is recent. */
function goAll() {
  const view = allView(state.view, session.now(), sourceBounds());
  if (view) showView(view);
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
  drawRigs();
  updateLiveText();
  if (!loader.loading) updateRangeText();
  const data = loader.current();
  // While the WebSocket is not live, fetch what arrived meanwhile (witskit serve never has one).
  if (data && state.liveState !== "live" && !loader.loading && Math.floor(Date.now() / 1000) % 5 === 0) loader.catchUp(data);
  // A live view of buckets asks for the newer ones now and then (series.js: SeriesData.covers).
  if (data && state.view.live && state.view.span > RAW_SPAN && !loader.seriesWanted) loader.loadSeries();
  state.dirty = true;
}

function frameLoop() {
  if (!state.started) {
    state.looping = false;
    return;
  }
  if (state.dirty && !byId("dashboard-view").hidden) {
    state.dirty = false;
    const data = loader.current();
    const now = session.now();
    const system = unitSystem(data);
    syncUnitRadios(system);
    drawTiles(data, system, now);
    drawTracks(data, system, now);
    drawQuality(data, now);
    const [min, max] = onScreen(now);
    state.analytics.update(loader.rig, min, max, now);
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
    const [min, max] = onScreen(session.now());
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
