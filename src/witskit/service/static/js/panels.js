// The analytics on the dashboard: the rig-state strip beside the tracks, the KPI panel (time
// breakdown by state, connection-time histogram) and the quality issues of the range on screen.
// They ask /api/v1/data/rig-state, /data/kpi and /data/quality for the window on screen (its last
// 7 days when longer) when the rig or the window changes, and again every REFRESH seconds. The
// figures come from rigstate.js (DOM-free, tested under node); this module only draws them.

import { formatAge, h, setText } from "./dom.js";
import {
  STATES,
  analysisQuery,
  connectionTimes,
  histogram,
  stateStyle,
  stripSegments,
  timeBreakdown,
} from "./rigstate.js";

/** Seconds between two refreshes of the same window (the states of a live rig move on). */
const REFRESH = 30;
/** Issues listed in the panel (the route gives more; the counts say how many in all). */
const SHOWN_ISSUES = 8;

/** `el` with inline style properties set through the CSSOM (the page's CSP refuses style="..."). */
function styled(el, props) {
  Object.assign(el.style, props);
  return el;
}

function fmtHours(hours) {
  return hours >= 10 ? `${hours.toFixed(0)} h` : hours >= 1 ? `${hours.toFixed(1)} h` : `${Math.round(hours * 60)} min`;
}

function fmtTime(iso) {
  return new Date(iso).toLocaleString([], { hour12: false, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export class AnalyticsPanels {
  /**
   * `strip`: the strip's element beside the tracks; `kpi` and `issues`: the panels' bodies;
   * `plotOf()`: the element whose height and top the strip follows (the first time track's plot);
   * `api`: the API client (get(path, query, signal)).
   */
  constructor({ strip, kpi, issues, plotOf, api }) {
    this.strip = strip;
    this.kpi = kpi;
    this.issues = issues;
    this.plotOf = plotOf;
    this.api = api;
    this.key = "";
    this.asked = 0;
    this.intervals = [];
    this.source = null;
    this.window = null;
    this.inFlight = false;
    this.next = null;
    this.inner = h("div", { class: "state-strip-inner", role: "img", "aria-label": "Rig state along the time tracks" });
    strip.append(this.inner);
  }

  /** The rig `source` shows [min, max) (seconds) at `now`: fetch what changed, draw the strip. */
  update(source, min, max, now) {
    if (!source) {
      this.clear();
      return;
    }
    if (source !== this.source) {
      this.clear();
      this.source = source;
      this.kpi.replaceChildren(h("p", { class: "muted small" }, "Computing the KPIs…"));
      this.issues.replaceChildren();
    }
    this.window = [min, max];
    const q = analysisQuery(source, min, max);
    // A live window moves every second: ask again when it moved by a tenth of its span, or on REFRESH.
    const step = Math.max(REFRESH, (max - min) / 10);
    const key = `${source}|${Math.floor(min / step)}|${Math.floor(max / step)}`;
    if (key !== this.key || now - this.asked >= REFRESH) {
      this.key = key;
      this.asked = now;
      this.fetch(q);
    }
    this.drawStrip(min, max);
  }

  redraw() {
    if (this.window) this.drawStrip(this.window[0], this.window[1]);
  }

  clear() {
    this.source = null;
    this.next = null;
    this.key = "";
    this.intervals = [];
    this.inner.replaceChildren();
    this.strip.dataset.segments = "0";
  }

  /**
   * Asks the three routes, one after the other (the server runs two analyses at a time, for every
   * screen: a dashboard asks for one at a time). A window asked for meanwhile is asked for next;
   * a newer rig or window replaces the one waiting.
   */
  async fetch(q) {
    if (this.inFlight) {
      this.next = q;
      return;
    }
    this.inFlight = true;
    try {
      const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));
      const states = await settle(this.api.get("/data/rig-state", q));
      if (states.value && states.value.source === this.source) {
        this.intervals = states.value.intervals;
        this.strip.dataset.source = states.value.source;
        this.redraw();
      }
      const kpi = await settle(this.api.get("/data/kpi", { source: q.source, start: q.start, end: q.end }));
      if (q.source === this.source) this.drawKpi(kpi.value || null, kpi.error || null);
      const quality = await settle(this.api.get("/data/quality", { ...q, limit: 200 }));
      if (q.source === this.source) this.drawIssues(quality.value || null);
    } finally {
      this.inFlight = false;
    }
    const next = this.next;
    this.next = null;
    if (next && next.source === this.source) this.fetch(next);
  }

  drawStrip(min, max) {
    const plot = this.plotOf();
    const height = plot ? plot.clientHeight : 0;
    if (plot) {
      const top = plot.getBoundingClientRect().top - this.strip.getBoundingClientRect().top;
      this.inner.style.top = `${Math.max(0, Math.round(top))}px`;
      this.inner.style.height = `${height}px`;
    }
    const segs = stripSegments(this.intervals, min, max, height);
    const nodes = segs.map((s) =>
      styled(
        h("div", {
          class: "state-seg",
          title: `${s.label}: ${formatAge(s.end - s.start)} from ${new Date(s.start * 1000).toLocaleTimeString([], { hour12: false })}`,
          dataset: { state: s.state },
        }),
        { top: `${s.top.toFixed(1)}px`, height: `${Math.max(1, s.height).toFixed(1)}px`, background: s.colour },
      ),
    );
    this.inner.replaceChildren(...nodes);
    this.strip.dataset.segments = String(nodes.length);
  }

  drawKpi(body, error) {
    const panel = this.kpi;
    if (!body) {
      panel.replaceChildren(h("p", { class: "muted small" }, error && error.message ? error.message : "No KPIs for this range."));
      return;
    }
    const total = body.kpis.total;
    const unit = body.kpis.units.depth;
    const rows = timeBreakdown(total.hours);
    const breakdown = h(
      "ul",
      { class: "kpi-breakdown", "aria-label": "Time by rig state" },
      rows.map((r) =>
        h(
          "li",
          { dataset: { state: r.state } },
          styled(h("span", { class: "swatch", "aria-hidden": "true" }), { background: r.colour }),
          h("span", { class: "kpi-label" }, r.label),
          h("span", { class: "kpi-bar", "aria-hidden": "true" }, styled(h("span"), { width: `${(r.share * 100).toFixed(1)}%`, background: r.colour })),
          h("span", { class: "kpi-value" }, `${fmtHours(r.hours)} · ${Math.round(r.share * 100)}%`),
        ),
      ),
    );
    const times = connectionTimes(body.kpis);
    const bins = histogram(times, 60, 8);
    const most = Math.max(1, ...bins.map((b) => b.count));
    const hist = h(
      "div",
      { class: "kpi-histogram", role: "img", "aria-label": `Connection times (slips to slips), ${times.length} connections` },
      bins.map((b) =>
        h(
          "div",
          { class: "kpi-bin", dataset: { count: String(b.count) }, title: `${b.from / 60}${b.to === Infinity ? "+" : `–${b.to / 60}`} min: ${b.count}` },
          styled(h("span", { class: "kpi-bin-bar" }), { height: `${((b.count / most) * 100).toFixed(0)}%` }),
          h("span", { class: "kpi-bin-label" }, b.to === Infinity ? `${b.from / 60}+` : `${b.from / 60}`),
        ),
      ),
    );
    const rop = total.on_bottom_rop.total;
    const facts = h(
      "dl",
      { class: "kpi-facts" },
      h("div", {}, h("dt", {}, "On bottom"), h("dd", { dataset: { kpi: "on-bottom" } }, fmtHours(total.on_bottom_hours.rotary + total.on_bottom_hours.slide))),
      h("div", {}, h("dt", {}, "Footage"), h("dd", { dataset: { kpi: "footage" } }, `${total.footage.total.toFixed(0)} ${unit}`)),
      h("div", {}, h("dt", {}, "ROP"), h("dd", {}, rop === null ? "—" : `${rop.toFixed(0)} ${unit}/h`)),
      h("div", {}, h("dt", {}, "Connections"), h("dd", { dataset: { kpi: "connections" } }, String(total.connections.count))),
      h("div", {}, h("dt", {}, "S2S avg"), h("dd", {}, total.connections.slips_to_slips_avg_s === null ? "—" : formatAge(total.connections.slips_to_slips_avg_s))),
      h("div", {}, h("dt", {}, "Flat time"), h("dd", {}, fmtHours(total.flat_hours))),
    );
    panel.replaceChildren(
      facts,
      h("h3", { class: "kpi-title" }, "Time by state"),
      rows.length ? breakdown : h("p", { class: "muted small" }, "No classified frames in this range."),
      h("h3", { class: "kpi-title" }, "Connection time (min, slips to slips)"),
      bins.length ? hist : h("p", { class: "muted small" }, "No connection in this range."),
    );
    panel.dataset.frames = String(body.frames);
  }

  drawIssues(body) {
    const panel = this.issues;
    if (!body) {
      panel.replaceChildren();
      return;
    }
    const counts = Object.entries(body.counts).map(([kind, n]) => `${n} ${kind.replaceAll("_", " ")}`);
    const items = body.issues.slice(0, SHOWN_ISSUES).map((i) =>
      h(
        "li",
        { dataset: { kind: i.kind } },
        h("span", { class: "issue-kind" }, i.kind.replaceAll("_", " ")),
        " ",
        h("span", { class: "issue-code" }, i.code ? `${i.code} ${i.mnemonic}` : "frames"),
        h("span", { class: "issue-when muted small" }, ` ${fmtTime(i.start)}`),
        h("div", { class: "issue-detail muted small" }, i.detail),
      ),
    );
    panel.replaceChildren(
      h("p", { class: "small", dataset: { testid: "quality-issues-count" } }, counts.length ? `Range: ${counts.join(", ")}` : "Range: no issue found"),
      h("ul", { class: "issue-list" }, items),
    );
    panel.dataset.issues = String(body.issues.length);
  }
}

/** The strip's legend: one swatch per state. */
export function stateLegend() {
  return h(
    "ul",
    { class: "state-legend small", "aria-label": "Rig states" },
    STATES.map((s) => h("li", {}, styled(h("span", { class: "swatch", "aria-hidden": "true" }), { background: stateStyle(s.state).colour }), s.label)),
  );
}
