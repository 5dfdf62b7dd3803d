// Copies the vendored libraries' built files from node_modules into the Python package.
//
//   cd frontend && npm ci && npm run build     (npm run check: verify the committed copy)
//
// Only browser builds, stylesheets and licences are vendored; the dashboard's own code is plain ES
// modules in src/witskit/service/static/ and needs no build. Each library's SOURCE.txt records the
// version, the registry's integrity hash and each file's SHA-256, so a reviewer can tell the
// committed copy is the published one.
//
// - uplot: the dashboard's charts (static/vendor/uplot).
// - swagger-ui-dist: the API browser at /docs (static/vendor/swagger-ui), served from the package
//   under the dashboard's Content-Security-Policy instead of a public CDN.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "src", "witskit", "service", "static", "vendor");
const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));

// [npm package, folder in static/vendor, [[file in the npm package, name in the folder], ...]]
const libraries = [
  [
    "uplot",
    "uplot",
    [
      ["dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
      ["dist/uPlot.min.css", "uPlot.min.css"],
      ["LICENSE", "LICENSE"],
    ],
  ],
  [
    "swagger-ui-dist",
    "swagger-ui",
    [
      ["swagger-ui-bundle.js", "swagger-ui-bundle.js"],
      ["swagger-ui.css", "swagger-ui.css"],
      ["LICENSE", "LICENSE"],
      ["NOTICE", "NOTICE"],
    ],
  ],
];

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
// The bundle names its source map; the map is not vendored, so the comment would only 404.
const withoutSourceMap = (name, body) =>
  name.endsWith(".js") || name.endsWith(".css")
    ? Buffer.from(body.toString("utf8").replace(/\n?\/[/*][#@] sourceMappingURL=[^\n]*\s*$/, "\n"))
    : body;

const check = process.argv.includes("--check");
let stale = 0;
for (const [pkg, folder, files] of libraries) {
  const pkgDir = join(here, "node_modules", pkg);
  const locked = lock.packages[`node_modules/${pkg}`];
  const installed = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  if (installed.version !== locked.version) {
    console.error(`node_modules has ${pkg} ${installed.version}, the lock says ${locked.version}: run npm ci`);
    process.exit(1);
  }
  const target = join(vendor, folder);
  const outputs = new Map();
  const lines = [
    `${pkg} ${locked.version} (${installed.license}) from the npm registry`,
    `integrity ${locked.integrity}`,
    "rebuilt with: cd frontend && npm ci && npm run build",
    "",
  ];
  for (const [from, to] of files) {
    const body = withoutSourceMap(to, readFileSync(join(pkgDir, from)));
    outputs.set(to, body);
    lines.push(`${sha256(body)}  ${to}`);
  }
  outputs.set("SOURCE.txt", Buffer.from(lines.join("\n") + "\n"));

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
}
process.exit(stale ? 1 : 0);
