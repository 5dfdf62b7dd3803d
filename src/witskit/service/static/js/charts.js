// The tracks, drawn with uPlot (vendored, /static/vendor/uplot). They are vertical, as a mud
// logger reads them: time (or depth) runs down the page, values run across. Time tracks share one
// time scale and one cursor; dragging across a track zooms all of them, the wheel zooms around the
// pointer, and the toolbar (or the keyboard) pans. Over long ranges each time track also draws a
// band from the minimum to the maximum of every bucket (series.js), under the line of the means.

import { h } from "./dom.js";
import { axisTicks, fitLabels, minSpanFor, timeLabels, valueRange } from "./scales.js";

/* global uPlot */

const SYNC_KEY = "witskit-tracks";

/** The theme's colours, read from the CSS custom properties so charts follow the theme. */
export function palette() {
  const css = getComputedStyle(document.documentElement);
  const get = (name) => css.getPropertyValue(name).trim();
  return {
    fg: get("--fg"),
    muted: get("--muted"),
    grid: get("--grid"),
    warn: get("--warn"),
    bad: get("--bad"),
    series: [get("--c1"), get("--c2")],
    bands: [get("--c1-band"), get("--c2-band")],
    font: `12px ${get("--font-ui") || "sans-serif"}`,
  };
}

/** A 2D context to measure labels with (the axes' font, in CSS px). */
let measurer = null;
function measureWith(font) {
  if (!measurer) measurer = document.createElement("canvas").getContext("2d");
  const cache = new Map();
  return (text) => {
    let width = cache.get(text);
    if (width === undefined) {
      measurer.font = font;
      width = measurer.measureText(text).width;
      if (cache.size > 5000) cache.clear(); // labels are round numbers: this is hours of panning
      cache.set(text, width);
    }
    return width;
  };
}

/** The font size (px) of a CSS font shorthand ("12px system-ui" -> 12). */
function fontSize(font) {
  const match = /([\d.]+)px/.exec(font);
  return match ? Number(match[1]) : 12;
}

/** The plotting area inside the canvas, in CSS px: {left, top, width, height}. */
function plotBox(u) {
  const r = u.pxRatio || window.devicePixelRatio || 1;
  return { left: u.bbox.left / r, top: u.bbox.top / r, width: u.bbox.width / r, height: u.bbox.height / r };
}

class Track {
  /**
   * def: {id, title, series: [{code, label}], shared: bool (one scale for all curves)}
   * options: {showAxis, axisKind: "time" | "depth", bands: bool, onZoom(min, max), onCursor(idx), syncKey}
   *
   * With `bands`, the plot's series are, after x, a (max, min) pair per curve, then the curves:
   * the bands are drawn first so that the lines stay on top.
   */
  constructor(parent, def, options) {
    this.def = def;
    this.options = options;
    this.values = [];
    this.root = h("section", {
      class: `track track-${def.id}`,
      "aria-label": `${def.title} track`,
      dataset: { track: def.id },
    });
    const header = h("header", { class: "track-head" }, h("h3", {}, def.title));
    this.legend = def.series.map((s, i) => {
      const value = h("span", { class: "legend-value" }, "—");
      const unit = h("span", { class: "legend-unit" }, "");
      header.append(
        h("div", { class: `legend legend-${i + 1}` }, h("span", { class: "swatch", "aria-hidden": "true" }), h("span", { class: "legend-name" }, s.label), value, unit),
      );
      return { value, unit };
    });
    this.plot = h("div", { class: "track-plot", role: "img", "aria-label": def.title });
    this.root.append(header, this.plot);
    parent.append(this.root);
    this.u = null;
    // One value scale per curve, or one for all (`shared`); each at least its unit's span.
    this.scaleKeys = def.series.map((s, i) => (def.shared ? "v0" : `v${i}`));
    this.minSpans = {};
  }

  /**
   * The units on screen of the curves (the dictionary's unit strings, in `def.series` order): each
   * value scale spans at least the minimum span of its unit (scales.js MIN_SPAN).
   */
  setUnits(units) {
    const spans = {};
    this.scaleKeys.forEach((key, i) => {
      spans[key] = Math.max(spans[key] || 0, minSpanFor(units[i]));
    });
    this.minSpans = spans;
  }

  /** Columns of no data, in the layout the plot expects. */
  emptyData() {
    const n = this.def.series.length * (this.options.bands ? 3 : 1);
    return [[], ...Array.from({ length: n }, () => [])];
  }

  build(theme) {
    const { def, options } = this;
    const data = this.emptyData();
    const axisKind = options.axisKind || "time";
    const { scaleKeys } = this;
    const scales = {
      x: axisKind === "time" ? { time: true, ori: 1, dir: -1 } : { time: false, ori: 1, dir: -1 },
    };
    // Each value scale is at least the minimum span of its unit (setUnits), so a steady channel
    // is not stretched across the track by its noise.
    for (const key of new Set(scaleKeys)) {
      scales[key] = { ori: 0, dir: 1, range: (u, min, max) => valueRange(min, max, this.minSpans[key] || 0) };
    }
    const measure = measureWith(theme.font);
    const lineHeight = fontSize(theme.font);
    // Labels are laid out here rather than by uPlot's spacing: as far apart as they are wide, as
    // many decimals as the step needs (no "204 204 205"), none clipped at the canvas edge.
    this.ticks = [];
    const valueSplits = (u, axisIdx, min, max) => {
      const box = plotBox(u);
      const ticks = axisTicks(min, max, box.width, {
        measure,
        before: box.left,
        after: u.width - box.left - box.width,
        compact: true,
      });
      this.ticks[axisIdx] = ticks;
      return ticks.splits;
    };
    const depthSplits = (u, axisIdx, min, max) => {
      const box = plotBox(u);
      const ticks = axisTicks(min, max, box.height, {
        measure: () => lineHeight,
        before: box.top,
        after: u.height - box.top - box.height,
        gap: 2 * lineHeight,
      });
      // Time and depth run down the page: the first split is at the top.
      this.ticks[axisIdx] = ticks;
      return ticks.splits;
    };
    const tickLabels = (u, splits, axisIdx) => {
      const ticks = this.ticks[axisIdx];
      const ours = ticks && ticks.splits.length === splits.length && ticks.splits.every((v, i) => v === splits[i]);
      return ours ? ticks.labels : splits.map(() => "");
    };
    const timeValues = (u, splits, axisIdx, space, incr) => {
      const x = u.scales.x;
      const labels = timeLabels(splits, incr, (x.max ?? 0) - (x.min ?? 0));
      const box = plotBox(u);
      const at = splits.map((s) => box.top + u.valToPos(s, "x"));
      return fitLabels(labels, at, labels.map(() => lineHeight), 0, u.height);
    };
    // The vertical axis is as wide as its widest label: a date and a time on long ranges.
    const verticalSize = (u, values) => {
      if (!values) return axisKind === "time" ? 64 : 56;
      return Math.ceil(Math.max(24, ...values.map((v) => measure(v))) + 14);
    };
    const grid = { stroke: theme.grid, width: 1 };
    const xAxis = {
      scale: "x",
      side: 3,
      stroke: theme.muted,
      font: theme.font,
      grid,
      ticks: { show: false },
      size: options.showAxis ? verticalSize : 0,
      gap: 4,
      space: 2 * lineHeight + 6,
    };
    if (!options.showAxis) xAxis.values = (u, splits) => splits.map(() => "");
    else if (axisKind === "time") xAxis.values = timeValues;
    else Object.assign(xAxis, { splits: depthSplits, values: tickLabels });
    const axes = [xAxis];
    [...new Set(scaleKeys)].forEach((key, i) => {
      axes.push({
        scale: key,
        side: i === 0 ? 0 : 2,
        stroke: def.shared ? theme.fg : theme.series[i],
        font: theme.font,
        grid: { show: i === 0, stroke: theme.grid, width: 1 },
        ticks: { show: true, stroke: theme.grid, size: 4 },
        size: 26,
        gap: 2,
        space: 8, // uPlot only has to find some step: valueSplits chooses the real one
        splits: valueSplits,
        values: tickLabels,
      });
    });
    const series = [{}];
    const bands = [];
    if (options.bands) {
      def.series.forEach((s, i) => {
        const edge = { scale: scaleKeys[i], stroke: theme.bands[i], width: 1, spanGaps: false, points: { show: false } };
        series.push({ ...edge, label: `${s.label} max` }, { ...edge, label: `${s.label} min` });
        bands.push({ series: [series.length - 2, series.length - 1], fill: theme.bands[i] });
      });
    }
    def.series.forEach((s, i) => {
      series.push({
        label: s.label,
        scale: scaleKeys[i],
        stroke: theme.series[i],
        width: 1.5,
        spanGaps: false, // a null reading or a gap shows as a break, never as an invented line
        points: { show: false },
      });
    });
    const opts = {
      width: Math.max(80, this.plot.clientWidth),
      height: Math.max(120, this.plot.clientHeight),
      scales,
      axes,
      series,
      bands,
      legend: { show: false },
      padding: [4, 14, 4, 4], // room on the right for the last value label
      cursor: {
        sync: options.syncKey ? { key: options.syncKey, setSeries: false } : undefined,
        drag: { x: true, y: false, setScale: false },
        points: { show: false },
      },
      hooks: {
        setSelect: [
          (u) => {
            const { top, height } = u.select;
            if (height > 4 && options.onZoom) {
              const a = u.posToVal(top, "x");
              const b = u.posToVal(top + height, "x");
              options.onZoom(Math.min(a, b), Math.max(a, b));
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        setCursor: [
          (u) => {
            if (options.onCursor) options.onCursor(u.cursor.idx ?? null);
          },
        ],
      },
    };
    if (this.u) this.u.destroy();
    this.u = new uPlot(opts, data, this.plot);
    this.u.over.addEventListener(
      "wheel",
      (event) => {
        if (!options.onWheel) return;
        event.preventDefault();
        const at = this.u.posToVal(event.offsetY, "x");
        options.onWheel(at, event.deltaY > 0 ? 1.25 : 0.8);
      },
      { passive: false },
    );
    this.u.over.addEventListener("dblclick", () => options.onReset && options.onReset());
  }

  /**
   * Draws `lines` (a column per curve) against `x`; `bands` is a [max, min] pair of columns per
   * curve, or null (no band). `min` and `max` fix the x range.
   */
  setColumns(x, lines, bands, min, max) {
    const data = [x];
    if (this.options.bands) {
      const none = bands ? null : new Array(x.length).fill(null);
      lines.forEach((_, i) => data.push(...(bands ? bands[i] : [none, none])));
    }
    data.push(...lines);
    this.setData(data, min, max);
  }

  setData(data, min, max) {
    if (!this.u) return;
    this.u.batch(() => {
      this.u.setData(data, true);
      if (min !== undefined && max !== undefined && max > min) this.u.setScale("x", { min, max });
    });
  }

  /** The values (text, set as text), their units and titles (the whole of a shortened text reading). */
  setLegend(texts, units, titles = []) {
    this.legend.forEach((entry, i) => {
      if (entry.value.textContent !== texts[i]) entry.value.textContent = texts[i];
      if (entry.unit.textContent !== units[i]) entry.unit.textContent = units[i];
      const title = titles[i] || "";
      if ((entry.value.getAttribute("title") || "") !== title) {
        if (title) entry.value.setAttribute("title", title);
        else entry.value.removeAttribute("title");
      }
    });
  }

  resize() {
    if (!this.u) return;
    const width = Math.max(80, this.plot.clientWidth);
    const height = Math.max(120, this.plot.clientHeight);
    if (width !== this.u.width || height !== this.u.height) this.u.setSize({ width, height });
  }

  destroy() {
    if (this.u) this.u.destroy();
    this.u = null;
    this.root.remove();
  }
}

/** The time tracks: each a few channels against time, time increasing downward. */
export const TIME_TRACKS = [
  // Hole depth first so that bit depth, drawn after it, stays visible where they are equal.
  { id: "depth", title: "Depth", shared: true, series: [{ code: "0110", label: "Hole" }, { code: "0108", label: "Bit" }] },
  { id: "loads", title: "Hookload · WOB", series: [{ code: "0114", label: "HKLD" }, { code: "0116", label: "WOB" }] },
  { id: "rotary", title: "RPM · Torque", series: [{ code: "0120", label: "RPM" }, { code: "0118", label: "TQ" }] },
  { id: "hydraulics", title: "SPP · Flow in", series: [{ code: "0121", label: "SPP" }, { code: "0130", label: "Flow" }] },
  { id: "rop", title: "ROP · Pit volume", series: [{ code: "0113", label: "ROP" }, { code: "0126", label: "Pits" }] },
];

/** The depth track: drilling parameters against hole depth, depth increasing downward. */
export const DEPTH_TRACK = {
  id: "depth-log",
  title: "ROP · WOB vs depth",
  series: [{ code: "0113", label: "ROP" }, { code: "0116", label: "WOB" }],
};

export class Tracks {
  constructor(container, handlers) {
    this.container = container;
    this.handlers = handlers;
    this.time = TIME_TRACKS.map(
      (def, i) =>
        new Track(container, def, {
          showAxis: i === 0,
          axisKind: "time",
          bands: true,
          syncKey: SYNC_KEY,
          onZoom: handlers.onZoom,
          onWheel: handlers.onWheel,
          onReset: handlers.onReset,
          onCursor: handlers.onCursor,
        }),
    );
    this.depth = new Track(container, DEPTH_TRACK, {
      showAxis: true,
      axisKind: "depth",
      onCursor: handlers.onDepthCursor,
    });
    this.depth.root.classList.add("track-depthlog");
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(container);
  }

  build(theme) {
    for (const track of [...this.time, this.depth]) track.build(theme);
  }

  resize() {
    for (const track of [...this.time, this.depth]) track.resize();
  }

  destroy() {
    this.resizer.disconnect();
    for (const track of [...this.time, this.depth]) track.destroy();
  }
}

/** A #rrggbb colour at 15 % opacity (other notations are returned as they are). */
function faint(colour) {
  return /^#[0-9a-f]{6}$/i.test(colour) ? `${colour}26` : colour;
}

/** What the data-quality chart draws, as its legend names it (QualityChart.build draws each). */
export const QUALITY_SERIES = [
  { name: "nulls", text: "nulls", kind: "bar" },
  { name: "errors", text: "errors", kind: "bar" },
  { name: "frames", text: "frames", kind: "line" },
];

/**
 * The per-minute quality chart (last hour) in the side panel: one bar per minute, nulls (amber)
 * with the frame errors (red) stacked on them, so neither hides the other, and frames per minute
 * as a faint line on its own scale (a gap shows as a dip to zero). Its legend is built from
 * QUALITY_SERIES.
 */
export class QualityChart {
  constructor(parent) {
    this.plot = h("div", { class: "quality-plot", role: "img", "aria-label": "Nulls, frame errors and frames per minute, last hour" });
    this.legend = h(
      "p",
      { class: "legend-line small quality-legend" },
      QUALITY_SERIES.map((s) =>
        h("span", { class: "quality-key", dataset: { series: s.name } }, h("span", { class: `swatch q-${s.name} q-${s.kind}`, "aria-hidden": "true" }), s.text),
      ),
    );
    parent.append(this.plot, this.legend);
    this.u = null;
  }

  /** [minutes, nulls, errors, frames] as drawn: [minutes, frames, nulls + errors (the stack), nulls]. */
  static stacked([minutes, nulls, errors, frames]) {
    const top = minutes.map((_, k) => (nulls[k] === null && errors[k] === null ? null : (nulls[k] || 0) + (errors[k] || 0)));
    return [minutes, frames, top, nulls];
  }

  build(theme, data) {
    if (this.u) this.u.destroy();
    const bars = uPlot.paths.bars({ size: [0.8, 8] });
    const bar = (label, colour) => ({ label, stroke: colour, fill: colour, paths: bars, points: { show: false } });
    // Drawn in this order: the frames (a faint area under the line, so a steady feed reads as a
    // chart, not as a rule), then the stack (its visible top is the errors), the nulls over its foot.
    const series = [
      {},
      { label: "frames", scale: "rows", stroke: theme.muted, fill: faint(theme.muted), width: 1, points: { show: false } },
      bar("errors", theme.bad),
      bar("nulls", theme.warn),
    ];
    data = QualityChart.stacked(data);
    this.u = new uPlot(
      {
        width: Math.max(120, this.plot.clientWidth),
        height: 70,
        legend: { show: false },
        cursor: { show: false },
        padding: [4, 4, 0, 4],
        scales: {
          // Half a minute of room at each end: the first and last minutes' bars are whole.
          x: { time: true, range: (u, min, max) => (min === null ? [0, 1] : [min - 30, max + 30]) },
          y: { range: (u, min, max) => [0, Math.max(1, max)] },
          rows: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] },
        },
        axes: [{ show: false }, { show: false, scale: "rows" }, { show: false }],
        series,
      },
      data,
      this.plot,
    );
  }

  setData(data) {
    if (!this.u) return;
    const width = Math.max(120, this.plot.clientWidth);
    if (width !== this.u.width) this.u.setSize({ width, height: 70 });
    this.u.setData(QualityChart.stacked(data));
  }

  destroy() {
    if (this.u) this.u.destroy();
    this.u = null;
  }
}
