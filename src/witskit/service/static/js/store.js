// What the dashboard knows about one rig: the channels a driller watches, as columns in time
// order (history from /api/v1/data, then live frames from the WebSocket), their latest values,
// and what is needed for the data-quality signals.
//
// A reading is a number, null (a null reading) or text (a value the rig sent that does not fit
// its item's type, readings.js). The columns hold numbers and nulls only, so a text reading is a
// gap in a track's line, never a zero; the text itself is kept beside them (`texts`, by time) for
// the tiles and the legends.

import { readingOf } from "./readings.js";

/** The tiles and tracks, by WITS record-1 item, with the decimals a driller reads them to
 * (`integer`: an integer item, whose decimal values, sent by some rigs, are shown as sent). */
export const CHANNELS = [
  { code: "0108", name: "DBTM", label: "Bit depth", digits: 1 },
  { code: "0110", name: "DMEA", label: "Hole depth", digits: 1 },
  { code: "0113", name: "ROPA", label: "ROP", digits: 1 },
  { code: "0114", name: "HKLA", label: "Hookload", digits: 1 },
  { code: "0116", name: "WOBA", label: "WOB", digits: 1 },
  { code: "0120", name: "RPMA", label: "Rotary RPM", digits: 0, integer: true },
  { code: "0118", name: "TQA", label: "Torque", digits: 1 },
  { code: "0121", name: "SPPA", label: "Standpipe pressure", digits: 0 },
  { code: "0130", name: "MFIA", label: "Flow in", digits: 0 },
  { code: "0126", name: "TVA", label: "Total pit volume", digits: 1 },
];
/** The channel of each code (its decimals are the same in both unit systems: the magnitudes are alike). */
export const CHANNEL_OF = Object.fromEntries(CHANNELS.map((c) => [c.code, c]));
export const CODES = CHANNELS.map((c) => c.code);
const WANTED = new Set(CODES);

/** Rows kept per rig: a day at 2 Hz. Older rows are dropped from the front. */
const MAX_ROWS = 172800;
/** A pause between frames longer than this many typical intervals (and 5 s) is a gap. */
const GAP_FACTOR = 3;
const MIN_GAP = 5;

export class RigData {
  constructor(name) {
    this.name = name;
    this.t = []; // seconds since the epoch, ascending
    this.cols = Object.fromEntries(CODES.map((c) => [c, []]));
    this.texts = Object.fromEntries(CODES.map((c) => [c, new Map()])); // code -> time -> text reading
    this.nulls = []; // null readings among the channels, per row
    this.units = {}; // code -> unit as sent ("F", "KLB"...)
    this.latest = {}; // code -> {v, t}, v a number, text or null
    this.errors = new Map(); // minute (epoch s) -> frame errors and frames with bad lines, seen live
    this.framesLive = new Map(); // minute -> frames received live (any record)
    this.errorsSince = null; // when live error counting started
    this.lastFrame = null; // time of the newest frame of any record
    this.loadedFrom = null; // history is complete from here on (seconds), null: none loaded
    this.version = 0; // bumped on every change, so views redraw only when needed
  }

  get size() {
    return this.t.length;
  }

  /** Bad bytes the service's parser skipped for this rig: {type: "frame_error", timestamp, ...}. */
  addFrameError(record) {
    const t = Date.parse(record.timestamp) / 1000;
    if (!Number.isFinite(t)) return;
    const minute = Math.floor(t / 60) * 60;
    if (this.errorsSince === null) this.errorsSince = t;
    this.errors.set(minute, (this.errors.get(minute) || 0) + 1);
    this.version += 1;
  }

  /** A frame from the WebSocket: {source, timestamp, points: [{code, value, unit}], errors}. */
  addFrame(record) {
    const t = Date.parse(record.timestamp) / 1000;
    if (!Number.isFinite(t)) return;
    const minute = Math.floor(t / 60) * 60;
    if (this.errorsSince === null) this.errorsSince = t;
    this.framesLive.set(minute, (this.framesLive.get(minute) || 0) + 1);
    if (Array.isArray(record.errors) && record.errors.length) {
      this.errors.set(minute, (this.errors.get(minute) || 0) + 1);
    }
    this.lastFrame = Math.max(this.lastFrame || 0, t);
    const values = {};
    let any = false;
    for (const point of record.points || []) {
      if (!WANTED.has(point.code)) continue;
      any = true;
      values[point.code] = readingOf(point.value);
      if (point.unit) this.units[point.code] = point.unit;
    }
    if (any) this.merge([t], [values]);
    this.version += 1;
  }

  /** Values from /api/v1/latest ([{code, unit, time, value}]): units, and the newest readings. */
  addLatest(values) {
    for (const item of values) {
      if (!WANTED.has(item.code)) continue;
      if (item.unit) this.units[item.code] = item.unit;
      const t = Date.parse(item.time) / 1000;
      const v = readingOf(item.value);
      if (Number.isFinite(t) && (!this.latest[item.code] || this.latest[item.code].t < t)) {
        this.latest[item.code] = { v, t };
      }
    }
    this.version += 1;
  }

  /** Stored rows from /api/v1/data ({time, code, value}, in time order). */
  addRows(rows, from) {
    const times = [];
    const values = [];
    let lastKey = null;
    for (const row of rows) {
      if (!WANTED.has(row.code)) continue;
      if (row.time !== lastKey) {
        lastKey = row.time;
        times.push(Date.parse(row.time) / 1000);
        values.push({});
      }
      values[values.length - 1][row.code] = readingOf(row.value);
    }
    if (times.length) this.merge(times, values);
    if (from !== undefined) this.loadedFrom = this.loadedFrom === null ? from : Math.min(this.loadedFrom, from);
    this.version += 1;
  }

  /** Merges rows (times ascending) into the columns: one linear pass, equal times combined. */
  merge(times, values) {
    const n = this.t.length;
    if (n === 0 || times[0] > this.t[n - 1]) {
      for (let i = 0; i < times.length; i += 1) this.push(times[i], values[i]);
      this.trim();
      return;
    }
    const old = { t: this.t, cols: this.cols, nulls: this.nulls };
    this.t = [];
    this.cols = Object.fromEntries(CODES.map((c) => [c, []]));
    this.nulls = [];
    let i = 0;
    let j = 0;
    while (i < old.t.length || j < times.length) {
      const takeOld = j >= times.length || (i < old.t.length && old.t[i] < times[j]);
      if (takeOld) {
        this.t.push(old.t[i]);
        for (const c of CODES) this.cols[c].push(old.cols[c][i]);
        this.nulls.push(old.nulls[i]);
        i += 1;
      } else if (i < old.t.length && old.t[i] === times[j]) {
        const row = {};
        for (const c of CODES) row[c] = old.cols[c][i] ?? this.texts[c].get(old.t[i]) ?? null;
        Object.assign(row, values[j]);
        this.push(times[j], row);
        i += 1;
        j += 1;
      } else {
        this.push(times[j], values[j]);
        j += 1;
      }
    }
    this.trim();
  }

  push(t, values) {
    this.t.push(t);
    let nulls = 0;
    for (const c of CODES) {
      const v = Object.hasOwn(values, c) ? values[c] : undefined;
      // null: the rig sent a null reading (a gap in the line); undefined: not in this frame;
      // text: a gap in the line too, the text kept beside it.
      if (v === null) nulls += 1;
      const text = typeof v === "string";
      this.cols[c].push(v === undefined || text ? null : v);
      if (text) this.texts[c].set(t, v);
      else if (v !== undefined && this.texts[c].size) this.texts[c].delete(t);
      if (v !== undefined && (!this.latest[c] || this.latest[c].t <= t)) this.latest[c] = { v, t };
    }
    this.nulls.push(nulls);
  }

  trim() {
    const extra = this.t.length - MAX_ROWS;
    if (extra <= 0) return;
    this.t.splice(0, extra);
    this.nulls.splice(0, extra);
    for (const c of CODES) this.cols[c].splice(0, extra);
    for (const c of CODES) for (const t of this.texts[c].keys()) if (t < this.t[0]) this.texts[c].delete(t);
    this.loadedFrom = this.t[0];
  }

  /** The text reading of `code` at row `i`, or undefined (a number, a null or nothing there). */
  textAt(code, i) {
    const texts = this.texts[code];
    return texts.size && this.cols[code][i] === null ? texts.get(this.t[i]) : undefined;
  }

  /** Index of the first row at or after `t`. */
  indexAt(t) {
    let lo = 0;
    let hi = this.t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The typical interval between rows (median of the last 30), for gap detection. */
  typicalInterval() {
    const n = this.t.length;
    if (n < 3) return 1;
    const steps = [];
    for (let i = Math.max(1, n - 30); i < n; i += 1) steps.push(this.t[i] - this.t[i - 1]);
    steps.sort((a, b) => a - b);
    return steps[steps.length >> 1] || 1;
  }

  /**
   * Data quality over [end - minutes, end): per minute, rows, nulls, gaps and frame errors, and a
   * summary. Gaps and nulls come from every row held (history and live); frame errors only from
   * what arrived live (the store keeps no record of them), counted from `errorsSince`.
   */
  quality(end, minutes = 60) {
    const start = Math.floor(end / 60) * 60 - (minutes - 1) * 60;
    const buckets = Array.from({ length: minutes }, (_, k) => ({
      minute: start + k * 60,
      rows: 0,
      nulls: 0,
      gaps: 0,
      errors: this.errors.get(start + k * 60) || 0,
      frames: this.framesLive.get(start + k * 60) || 0,
    }));
    const threshold = Math.max(MIN_GAP, GAP_FACTOR * this.typicalInterval());
    let gaps = 0;
    let longest = 0;
    let lastGapAt = null;
    const first = this.indexAt(start);
    for (let i = first; i < this.t.length; i += 1) {
      const k = Math.floor((this.t[i] - start) / 60);
      if (k < 0 || k >= minutes) continue;
      const b = buckets[k];
      b.rows += 1;
      b.nulls += this.nulls[i];
      if (i > 0 && this.t[i - 1] >= (this.loadedFrom ?? this.t[0])) {
        const step = this.t[i] - this.t[i - 1];
        if (step > threshold) {
          b.gaps += 1;
          gaps += 1;
          longest = Math.max(longest, step);
          lastGapAt = this.t[i - 1];
        }
      }
    }
    // The current minute is still filling: rates use the last complete one.
    const complete = buckets.slice(0, -1);
    const last = complete[complete.length - 1] || buckets[0];
    const covered = complete.filter((b) => b.rows > 0);
    const avg = (key) => (covered.length ? covered.reduce((s, b) => s + b[key], 0) / covered.length : 0);
    const liveMinutes = complete.filter((b) => this.errorsSince !== null && b.minute >= Math.floor(this.errorsSince / 60) * 60);
    return {
      buckets,
      threshold,
      gaps,
      longest,
      lastGapAt,
      nullsLast: last.nulls,
      nullsAvg: avg("nulls"),
      errorsLast: last.errors,
      errorsAvg: liveMinutes.length ? liveMinutes.reduce((s, b) => s + b.errors, 0) / liveMinutes.length : 0,
      rowsLast: last.rows,
      errorsSince: this.errorsSince,
    };
  }
}
