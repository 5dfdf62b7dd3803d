// Copies the charting library's built files from node_modules into the Python package.
//
//   cd frontend && npm ci && npm run build     (npm run check: verify the committed copy)
//
// Only the minified browser build, its stylesheet and its licence are vendored; the dashboard's
// own code is plain ES modules in src/witskit/service/static/ and needs no build. SOURCE.txt
// records the version, the registry's integrity hash and each file's SHA-256, so a reviewer can
// tell the committed copy is the published one.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "src", "witskit", "service", "static", "vendor", "uplot");
const pkgDir = join(here, "node_modules", "uplot");
const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const locked = lock.packages["node_modules/uplot"];
const installed = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));

if (installed.version !== locked.version) {
  console.error(`node_modules has uplot ${installed.version}, the lock says ${locked.version}: run npm ci`);
  process.exit(1);
}

// [file in the npm package, name in static/vendor/uplot]
const files = [
  ["dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["dist/uPlot.min.css", "uPlot.min.css"],
  ["LICENSE", "LICENSE"],
];

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
const outputs = new Map();
const lines = [
  `uplot ${locked.version} (${installed.license}) from the npm registry`,
  `integrity ${locked.integrity}`,
  "rebuilt with: cd frontend && npm ci && npm run build",
  "",
];
for (const [from, to] of files) {
  const body = readFileSync(join(pkgDir, from));
  outputs.set(to, body);
  lines.push(`${sha256(body)}  ${to}`);
}
outputs.set("SOURCE.txt", Buffer.from(lines.join("\n") + "\n"));

const check = process.argv.includes("--check");
let stale = 0;
if (!check) mkdirSync(target, { recursive: true });
for (const [name, body] of outputs) {
  const path = join(target, name);
  if (check) {
    if (!existsSync(path) || !readFileSync(path).equals(body)) {
      console.error(`stale: ${path}`);
      stale += 1;
    }
  } else {
    writeFileSync(path, body);
    console.log(`wrote ${path}`);
  }
}
process.exit(stale ? 1 : 0);
