"""The dashboard's charts in a real Chromium, on data the test chooses (no service).

The tracks and the data-quality chart are built by ``static/js/charts.js`` in a harness page
(``dashboard_helpers.harness_page``) with the dashboard's own stylesheet, then what uPlot drew is
read back: the tick labels of every axis with their positions, the scales, the canvas pixels.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from dashboard_helpers import Browser, harness_page

# Steady drilling over two minutes: every channel moves a little (the case of the repeated ticks).
STEADY = {
    "0108": [6091.1, 6091.4, "F"],
    "0110": [6091.2, 6091.4, "F"],
    "0113": [53.2, 57.9, "F/HR"],
    "0114": [204.1, 205.3, "KLB"],
    "0116": [26.2, 26.9, "KLB"],
    "0118": [16.1, 16.8, "KFLB"],
    "0120": [119.6, 120.4, "RPM"],
    "0121": [2950.0, 2958.0, "PSI"],
    "0126": [774.2, 775.9, "BBL"],
    "0130": [690.0, 694.0, "GPM"],
}
# Larger numbers over a wide range: long labels in narrow tracks (the case of the clipped ticks).
WIDE = {
    **STEADY,
    "0110": [10000.0, 12650.0, "F"],
    "0108": [9980.0, 12650.0, "F"],
    "0114": [0.0, 412.5, "KLB"],
    "0121": [0.0, 34500.0, "KPA"],
    "0130": [0.0, 3785.0, "L/M"],
}

DRAW_TRACKS = """
async ({channels, width, height}) => {
  const { Tracks, TIME_TRACKS, DEPTH_TRACK, palette } = await import("/static/js/charts.js");
  const host = document.getElementById("tracks");
  host.style.width = `${width}px`;
  host.style.height = `${height}px`;
  const tracks = new Tracks(host, {});
  tracks.build(palette());
  const n = 120, t0 = 1800000000;
  const x = Array.from({length: n}, (_, i) => t0 + i);
  // Deterministic wiggle between each channel's low and high.
  const column = (code) => x.map((_, i) => {
    const [lo, hi] = channels[code];
    return lo + (hi - lo) * (0.5 + 0.5 * Math.sin(i * 0.7));
  });
  const unit = (code) => channels[code][2];
  TIME_TRACKS.forEach((def, k) => {
    const track = tracks.time[k];
    track.setUnits(def.series.map((s) => unit(s.code)));
    track.setColumns(x, def.series.map((s) => column(s.code)), null, x[0], x[n - 1]);
  });
  const [lo, hi] = channels["0110"];
  const depth = x.map((_, i) => lo + ((hi - lo) * i) / (n - 1));
  tracks.depth.setUnits(DEPTH_TRACK.series.map((s) => unit(s.code)));
  tracks.depth.setColumns(depth, DEPTH_TRACK.series.map((s) => column(s.code)), null, depth[0], depth[n - 1]);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const ctx = document.createElement("canvas").getContext("2d");
  return [...tracks.time, tracks.depth].map((track) => {
    const u = track.u;
    const pxr = u.pxRatio || devicePixelRatio;
    const axes = u.axes.map((axis, i) => {
      // uPlot keeps the font scaled to device pixels: measure in CSS pixels.
      const font = Array.isArray(axis.font) ? axis.font[0] : axis.font;
      ctx.font = font.replace(/[\\d.]+px/, (m) => `${parseFloat(m) / pxr}px`);
      const horizontal = axis.side % 2 === 0;
      const labels = (axis._values || []).map((text, j) => {
        const at = u.valToPos(axis._splits[j], axis.scale) + (horizontal ? u.bbox.left : u.bbox.top) / pxr;
        const size = horizontal ? ctx.measureText(text).width : parseFloat(ctx.font);
        return {text, from: at - size / 2, to: at + size / 2};
      });
      return {scale: axis.scale, horizontal, shown: axis._size > 0 && axis.show !== false, labels,
              length: horizontal ? u.width : u.height};
    });
    const scales = Object.fromEntries(Object.entries(u.scales).map(([k, s]) => [k, [s.min, s.max]]));
    return {id: track.def.id, axes, scales};
  });
}
"""


def drawn_tracks(browser: Browser, channels: dict[str, list[Any]], width: int, height: int) -> Any:
    page = harness_page(browser, width + 40, height + 40, '<div id="tracks" class="tracks"></div>')
    return page.evaluate(DRAW_TRACKS, {"channels": channels, "width": width, "height": height})


@pytest.mark.parametrize(
    ("channels", "width", "height"),
    [(STEADY, 1000, 480), (STEADY, 1400, 600), (WIDE, 1000, 480), (WIDE, 760, 420)],
    ids=["steady-1024", "steady-1440", "wide-1024", "wide-narrow"],
)
def test_tick_labels_are_distinct_and_fit_their_axis(
    browser: Browser, channels: dict[str, list[Any]], width: int, height: int
) -> None:
    for track in drawn_tracks(browser, channels, width, height):
        for axis in track["axes"]:
            if not axis["shown"]:
                continue
            where = f"{track['id']} axis {axis['scale']}"
            shown = [label for label in axis["labels"] if label["text"]]
            texts = [label["text"] for label in shown]
            assert len(texts) == len(set(texts)), f"{where}: labels repeat: {texts}"
            assert texts, f"{where}: no label at all"
            for label in shown:
                assert label["from"] >= 0, f"{where}: {label} is clipped"
                assert label["to"] <= axis["length"], f"{where}: {label} is clipped"
            ordered = sorted(shown, key=lambda label: label["from"])
            for before, after in itertools.pairwise(ordered):
                assert after["from"] - before["to"] >= 4, f"{where}: {before['text']} touches {after['text']}"


def test_noisy_channels_do_not_autoscale_to_their_noise(browser: Browser) -> None:
    tracks = {t["id"]: t for t in drawn_tracks(browser, STEADY, 1000, 480)}
    # RPM wandering by 0.8 rpm is drawn on at least 10 rpm, centred; torque on its own scale.
    rpm_lo, rpm_hi = tracks["rotary"]["scales"]["v0"]
    assert rpm_hi - rpm_lo >= 10, (rpm_lo, rpm_hi)
    assert rpm_lo < 119.6
    assert rpm_hi > 120.4
    spp_lo, spp_hi = tracks["hydraulics"]["scales"]["v0"]
    assert spp_hi - spp_lo >= 100, (spp_lo, spp_hi)
    hookload_lo, hookload_hi = tracks["loads"]["scales"]["v0"]
    assert hookload_hi - hookload_lo >= 10
    # The depth track's own value axes too (ROP in ft/h).
    rop_lo, rop_hi = tracks["depth-log"]["scales"]["v0"]
    assert rop_hi - rop_lo >= 10


DRAW_QUALITY = """
async () => {
  const { QualityChart, palette } = await import("/static/js/charts.js");
  const host = document.getElementById("quality");
  const chart = new QualityChart(host);
  const t0 = 1800000000, minutes = [], nulls = [], errors = [], frames = [];
  for (let k = 0; k < 60; k += 1) {
    minutes.push(t0 + 60 * k);
    // The same count of nulls and errors in the same minutes: one must not hide the other.
    const bad = k >= 20 && k < 35 ? 3 : 0;
    nulls.push(bad);
    errors.push(bad);
    frames.push(k >= 50 && k < 53 ? 0 : 60);
  }
  chart.build(palette(), [[], [], [], []]);
  chart.setData([minutes, nulls, errors, frames]);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const parse = (css) => css.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const legend = [...host.querySelectorAll("[data-series]")].map((item) => ({
    name: item.dataset.series,
    text: item.textContent.trim(),
    colour: parse(getComputedStyle(item.querySelector(".swatch")).backgroundColor),
  }));
  const canvas = chart.u.ctx.canvas;
  const pixels = chart.u.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const drawn = legend.map(({colour}) => {
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] < 200) continue;
      const off = [0, 1, 2].reduce((sum, c) => sum + Math.abs(pixels[i + c] - colour[c]), 0);
      if (off < 24) count += 1;
    }
    return count;
  });
  return {legend, drawn};
}
"""


def test_the_quality_chart_draws_every_series_its_legend_names(browser: Browser) -> None:
    panel = '<section class="panel quality"><div id="quality"></div></section>'
    page = harness_page(browser, 400, 300, panel)
    result = page.evaluate(DRAW_QUALITY)
    names = [item["name"] for item in result["legend"]]
    assert names == ["nulls", "errors", "frames"], result["legend"]
    colours = [tuple(item["colour"]) for item in result["legend"]]
    assert len(set(colours)) == 3, f"each series has its own colour: {colours}"
    for item, count in zip(result["legend"], result["drawn"], strict=True):
        assert count >= 20, f"the legend names {item['name']} but the chart shows {count} pixels of it"
