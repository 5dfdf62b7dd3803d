// Display units. The rig sends in one system and the decoder labels each value with its unit;
// this converts for display only, with factors exported from witskit.units (pint) into
// /static/units.json at build time, so no factor is typed by hand here.

let table = { counterpart: {}, codes: {}, factors: {} };

/** Loads /static/units.json (once, at start). */
export async function loadUnits(url) {
  const response = await fetch(url, { credentials: "omit" });
  if (!response.ok) throw new Error(`cannot load the unit table (${response.status})`);
  table = await response.json();
}

/** The unit of `code` in `system` ("metric", "fps"), for a value sent in `unit`. */
export function targetUnit(code, unit, system) {
  if (!unit || system === "sent") return unit;
  const pair = table.codes[code];
  if (pair && pair.includes(unit)) return system === "metric" ? pair[0] : pair[1];
  const known = table.counterpart[unit];
  return known ? known[system] : unit;
}

/** A converter from `from` to `to`: value => value (identity when they are the same). */
export function converter(from, to) {
  if (!from || !to || from === to) return (v) => v;
  const f = table.factors[`${from}>${to}`];
  if (!f) return (v) => v; // not convertible: shown as sent, with its own unit label
  const [scale, offset] = f;
  return (v) => (v === null || v === undefined ? v : v * scale + offset);
}

/** Which system a unit belongs to ("metric", "fps"), or null when it is used by both. */
export function systemOf(unit) {
  const known = table.counterpart[unit];
  if (!known || known.metric === known.fps) return null;
  if (known.metric === unit) return "metric";
  return known.fps === unit ? "fps" : null;
}

// How the dictionary's unit strings read on screen. Presentation only: conversion never uses these.
const LABELS = {
  F: "ft",
  M: "m",
  "F/HR": "ft/h",
  "M/HR": "m/h",
  KLB: "klbf",
  KDN: "kdaN",
  LB: "lbf",
  KFLB: "kft·lbf",
  KNM: "kN·m",
  PSI: "psi",
  KPA: "kPa",
  GPM: "gpm",
  "L/M": "L/min",
  BBL: "bbl",
  M3: "m³",
  PPG: "ppg",
  KGM3: "kg/m³",
  DEGF: "°F",
  DEGC: "°C",
  RPM: "rpm",
  SPM: "spm",
  IN: "in",
  MM: "mm",
  "----": "",
};

/** The unit as it reads on screen ("F/HR" -> "ft/h"). */
export function unitLabel(unit) {
  if (unit === undefined || unit === null) return "";
  return Object.hasOwn(LABELS, unit) ? LABELS[unit] : unit.toLowerCase();
}
