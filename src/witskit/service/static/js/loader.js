// Data loading: what the dashboard fetches for the rig on screen, and when.
//
// Opening a rig subscribes to its live frames and loads its latest values, then its last hour of
// rows from /api/v1/data. Views up to RAW_SPAN draw every stored point: near the present by
// extending the live rows back, further back from a window of rows of their own (`past`). Longer
// views, up to the whole stored range of the rig, draw buckets (min, max and mean per pixel row)
// from /api/v1/data/series (series.js), asked for once the view has settled. While the WebSocket
// is down, catchUp fetches what it missed, so nothing is lost across a reconnect.
//
// A Loader owns all of that state; app.js reads it to draw and calls its methods when the rig or
// the view changes. It touches no DOM: the network, the clock and the view come in as functions,
// so `node --test` runs it against an in-memory API (tests/dashboard/js/loader.test.mjs).

import { SeriesData, planSeries } from "./series.js";
import { CODES, RigData } from "./store.js";
import { RAW_SPAN } from "./view.js";

/** Raw rows this close to the present extend the live rows; older views get a window of their own. */
export const RECENT = 6 * 3600;
/** A series is asked for once the view has been still this long (ms): a spin of the wheel asks once. */
export const SERIES_DEBOUNCE = 250;
/** Points fetched per /data page, and at most per range. */
export const PAGE = 50000;
export const MAX_POINTS = 1000000;
/** What the range line says when a load stopped at MAX_POINTS or on an API error. */
export const CUT_SHORT = "Not all of this range could be loaded: pick a shorter one.";

function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

export class Loader {
  /**
   * - api: {get(path, query, signal)}, resolving to the parsed body (api.js: api).
   * - isApiError(e): true for an error the API reported (shown on the range line); any other
   *   error but an abort is a bug and is thrown on.
   * - openLive(name, {onFrame, onState, onReconnect}): the live subscription of a rig, with
   *   close() and retryIn (api.js: LiveSocket).
   * - now(): the server's clock in seconds.
   * - viewport(now): the view, {min, max, bounds}: the window on screen and the rig's stored
   *   range (or null).
   * - trackRows(): the buckets a track has room for (asked only when buckets are wanted: it
   *   measures the page).
   * - onChange(): something to draw arrived.
   * - onProgress(message): a load started or ended (message: why it fell short, or "").
   * - onLive(state, detail): the live subscription of the rig on screen changed state.
   */
  constructor({ api, isApiError, openLive, now, viewport, trackRows, onChange, onProgress, onLive, onAlarm }) {
    Object.assign(this, { api, isApiError, openLive, now, viewport, trackRows, onChange, onProgress, onLive });
    this.onAlarm = onAlarm || (() => {});
    this.data = new Map(); // rig name -> RigData, kept across rig changes
    this.rig = null; // the rig on screen
    this.socket = null; // its live subscription
    this.aborts = new Set(); // stored-data loads in flight, cancelled when the rig changes
    this.loading = 0; // loads in flight
    this.series = null; // SeriesData: the buckets of the rig, for views longer than RAW_SPAN
    this.seriesWanted = null; // {key, abort}: the series request in flight
    this.seriesTimer = 0;
    this.past = null; // {rig, from, to, data: RigData, abort}: the raw rows of a view far from the present
    this.extending = false; // the live rows are being extended back...
    this.wantFrom = null; // ...and then to here
  }

  /** The RigData of the rig on screen (undefined before one is picked). */
  current() {
    return this.data.get(this.rig);
  }

  /** Drops what belongs to the rig on screen: its subscription, loads in flight, buckets and past rows. */
  drop() {
    if (this.socket) this.socket.close();
    for (const abort of this.aborts) abort.abort();
    clearTimeout(this.seriesTimer);
    this.series = null;
    this.past = null;
  }

  /** Signed out: everything goes, the rows of every rig too. */
  stop() {
    this.drop();
    this.socket = null;
    this.rig = null;
    this.data.clear();
  }

  /** Puts `name` on screen and subscribes to its live frames; returns its RigData. */
  open(name) {
    this.drop();
    this.rig = name;
    let data = this.data.get(name);
    if (!data) {
      data = new RigData(name);
      this.data.set(name, data);
    }
    this.socket = this.openLive(name, {
      onFrame: (record) => {
        if (record.source && record.source !== name) return;
        if (record.type === "alarm") return this.onAlarm(record); // not a frame: the banner's
        if (record.type === "frame_error") data.addFrameError(record);
        else data.addFrame(record);
        this.onChange();
      },
      onState: (s, detail) => {
        if (this.rig === name) this.onLive(s, detail);
      },
      onReconnect: () => this.catchUp(data),
    });
    return data;
  }

  /**
   * The first loads of a rig just opened: its latest values, which carry each channel's unit
   * (stored rows do not) and fill the tiles at once, then its last `span` seconds of rows (an hour
   * at least, RAW_SPAN at most), which the data-quality panel and the live edge need.
   */
  async loadStart(data, span) {
    try {
      const [latest] = await this.api.get("/latest", { source: data.name, codes: CODES.join(",") });
      if (latest && this.data.get(data.name) === data) data.addLatest(latest.values);
    } catch (e) {
      if (!this.isApiError(e)) throw e;
    }
    const now = this.now();
    await this.loadRange(data, now - Math.min(Math.max(span, 3600), RAW_SPAN), now);
  }

  /** Fetches stored points of [start, end) page by page into `data`. Returns false when cut short. */
  async loadRange(data, start, end, { maxPoints = MAX_POINTS, from = start, abort = new AbortController() } = {}) {
    this.aborts.add(abort);
    this.loading += 1;
    this.onProgress("");
    let cursor;
    let total = 0;
    let complete = true;
    try {
      for (;;) {
        const page = await this.api.get(
          "/data",
          { source: data.name, codes: CODES.join(","), start: iso(start), end: iso(end), limit: PAGE, cursor },
          abort.signal,
        );
        total += page.count;
        data.addRows(page.rows);
        this.onChange();
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
      if (!this.isApiError(e)) throw e;
      complete = false;
    } finally {
      this.loading -= 1;
      this.aborts.delete(abort);
      this.onProgress(complete ? "" : CUT_SHORT);
    }
    return complete;
  }

  /** What the WebSocket missed while it was down (or all new rows, while it cannot connect). */
  async catchUp(data) {
    if (!data || data !== this.current()) return;
    const last = data.size ? data.t[data.size - 1] : this.now() - 3600;
    await this.loadRange(data, last, this.now() + 5, { from: null });
  }

  /** Extends the live rows back to `min` (views near the present), one load at a time. */
  async extendLive(data, min) {
    this.wantFrom = this.wantFrom === null ? min : Math.min(this.wantFrom, min);
    if (this.extending) return;
    this.extending = true;
    try {
      while (this.wantFrom !== null && data === this.current()) {
        const want = this.wantFrom;
        this.wantFrom = null;
        if (data.loadedFrom !== null && want >= data.loadedFrom) continue;
        if (!(await this.loadRange(data, want, data.loadedFrom ?? this.now()))) break;
      }
    } finally {
      this.extending = false;
      this.wantFrom = null;
      this.onChange();
    }
  }

  /** The held past window, when it has the rows of [min, max]. */
  pastFor(min, max) {
    const past = this.past;
    return past && past.rig === this.rig && past.from <= min && past.to >= Math.min(max, this.now()) ? past : null;
  }

  /**
   * Makes sure the rows of [min, max] are loaded: near the present by extending the live rows back,
   * further back as a window of their own with half the span to spare on each side (a pan or a zoom
   * in needs no new request).
   */
  ensureRaw(min, max) {
    const data = this.current();
    if (!data || (data.loadedFrom !== null && min >= data.loadedFrom) || this.pastFor(min, max)) return;
    const now = this.now();
    if (now - min <= RECENT) {
      this.extendLive(data, min);
      return;
    }
    if (this.past) this.past.abort.abort();
    const span = max - min;
    const rows = new RigData(data.name);
    rows.units = data.units; // the units of stored rows are those of the rig (from /latest)
    const past = { rig: data.name, from: min - span / 2, to: Math.min(now, max + span / 2), data: rows, abort: new AbortController() };
    this.past = past;
    this.loadRange(rows, past.from, past.to, { abort: past.abort }).then(() => this.onChange());
  }

  /** Loads what the view needs: rows up to RAW_SPAN, buckets (once the view has settled) past it. */
  request() {
    const { min, max } = this.viewport(this.now());
    if (max - min > RAW_SPAN) this.scheduleSeries();
    else this.ensureRaw(min, max);
  }

  scheduleSeries(delay = SERIES_DEBOUNCE) {
    clearTimeout(this.seriesTimer);
    this.seriesTimer = setTimeout(() => this.loadSeries(), delay);
  }

  /** The buckets held for the rig on screen, or null. */
  heldSeries() {
    const held = this.series;
    return held && held.rig === this.rig ? held : null;
  }

  /** Fetches the buckets of the view from /api/v1/data/series, unless those held cover it. */
  async loadSeries() {
    const data = this.current();
    if (!data) return;
    const now = this.now();
    const { min, max, bounds } = this.viewport(now);
    if (max - min <= RAW_SPAN) return;
    const plan = planSeries(min, max, this.trackRows(), now, bounds);
    const held = this.series;
    if ((held && held.rig === data.name && held.covers(plan, min)) || plan.points < 1) {
      this.tailFrom(data, held && held.rig === data.name ? held.end : plan.end);
      return;
    }
    const key = `${data.name} ${plan.width} ${plan.start} ${plan.end}`;
    if (this.seriesWanted && this.seriesWanted.key === key) return;
    if (this.seriesWanted) this.seriesWanted.abort.abort();
    const wanted = { key, abort: new AbortController() };
    this.seriesWanted = wanted;
    this.aborts.add(wanted.abort);
    this.loading += 1;
    this.onProgress("");
    let message = "";
    try {
      const query = { source: data.name, codes: CODES.join(","), start: iso(plan.start), end: iso(plan.end), points: plan.points };
      const body = await this.api.get("/data/series", query, wanted.abort.signal);
      if (this.rig === data.name) {
        this.series = new SeriesData(data.name, plan, body, CODES);
        this.tailFrom(data, plan.end);
      }
    } catch (e) {
      if (e.name !== "AbortError") {
        if (!this.isApiError(e)) throw e;
        message = `This range could not be loaded: ${e.message}`;
      }
    } finally {
      this.loading -= 1;
      this.aborts.delete(wanted.abort);
      if (this.seriesWanted === wanted) this.seriesWanted = null;
      this.onProgress(message);
      this.onChange();
    }
  }

  /** Rows from `t` on, for the buckets after a series: the live rows, reaching back when needed. */
  tailFrom(data, t) {
    const now = this.now();
    if (t < now && now - t <= RECENT && (data.loadedFrom === null || t < data.loadedFrom)) this.extendLive(data, t);
  }
}
