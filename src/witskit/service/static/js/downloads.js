// The Download menu: the LAS and WITSML documents of the rig on screen, over the view window.
// This module only builds requests and names files (no DOM), so `node --test` runs it
// (tests/dashboard/js/); app.js fetches with the session's credential (api.js: session.download)
// and hands the browser the file through a blob link.
//
// What each choice asks for (GET /api/v1/data/las and /data/witsml, docs/outputs.md):
// - the channels of the tracks (store.js: CODES), by 4-digit code, so that no mnemonic stands for
//   items of other records;
// - start and end: the view window on screen, as ISO 8601 UTC (to the second: the service's
//   times are);
// - a time log of a long window gets a coarser step, so it has at most MAX_ROWS rows (a LAS
//   time log has a row per second by default, WITSML one per frame): a week of 1 Hz data would
//   be over the service's limit on values otherwise. Each row then holds each channel's last
//   reading of its step.

/** Rows of a time log at most: 100,000 rows of the 10 channels, well inside the service's limit. */
export const MAX_ROWS = 100000;

/** The choices of the menu, in its order. */
export const DOWNLOADS = [
  { id: "las-time", label: "LAS, time index", path: "/data/las", index: "time", extension: "las" },
  { id: "las-depth", label: "LAS, depth index", path: "/data/las", index: "depth", extension: "las" },
  { id: "witsml-1411", label: "WITSML 1.4.1.1", path: "/data/witsml", index: "time", version: "1.4.1.1", extension: "xml" },
  { id: "witsml-20", label: "WITSML 2.0", path: "/data/witsml", index: "time", version: "2.0", extension: "xml" },
];

const BY_ID = Object.fromEntries(DOWNLOADS.map((d) => [d.id, d]));

/** Seconds since the epoch as ISO 8601 UTC, to the second (start rounded down, end up). */
export function isoSeconds(seconds, up = false) {
  const whole = up ? Math.ceil(seconds) : Math.floor(seconds);
  return new Date(whole * 1000).toISOString().replace(".000Z", "Z");
}

/** The step (seconds) of a time log over `span` seconds: null (the default) up to MAX_ROWS. */
export function timeStep(span) {
  return span > MAX_ROWS ? Math.ceil(span / MAX_ROWS) : null;
}

/**
 * The request of download `id` for `rig` over [min, max] (seconds): {path, query}, as api.js takes
 * them (`path` under /api/v1). Throws for an unknown id, no rig or an empty window.
 */
export function downloadRequest(id, rig, [min, max], codes) {
  const choice = BY_ID[id];
  if (!choice) throw new Error(`unknown download ${id}`);
  if (!rig) throw new Error("no rig is selected");
  if (!(Number.isFinite(min) && Number.isFinite(max) && max > min)) throw new Error("the view window is empty");
  const query = {
    source: rig,
    codes: codes.join(","),
    index: choice.index,
    start: isoSeconds(min),
    end: isoSeconds(max, true),
  };
  const step = choice.index === "time" ? timeStep(max - min) : null;
  if (step !== null) query.step = String(step);
  if (choice.version) query.version = choice.version;
  return { path: choice.path, query };
}

/** The same request as a URL path with its query string (for a look, and for tests). */
export function downloadUrl(id, rig, window, codes) {
  const { path, query } = downloadRequest(id, rig, window, codes);
  return `/api/v1${path}?${new URLSearchParams(query)}`;
}

/**
 * The file name to save as: the plain `filename="..."` of the service's Content-Disposition (its
 * safe characters only: it chose them), else `fallback`. Never a path.
 */
export function fileName(disposition, fallback) {
  const match = /filename="([^"]*)"/.exec(disposition || "");
  const name = match ? match[1].replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "") : "";
  return name || fallback;
}

/** The name to save as when the service gives none: rig, index and extension, safe characters only. */
export function fallbackName(id, rig) {
  const choice = BY_ID[id];
  const stem = String(rig).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "") || "export";
  return `${stem}_${choice.index}.${choice.extension}`;
}
