// Compiles src/ to dist/cjs (CommonJS) and dist/esm (ES modules), each with its types.
// With --check, compiles to a temporary directory and fails when dist/ differs: the
// committed dist/ is what consumers and the tests run, so it must match the sources.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const check = process.argv.includes("--check");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
if (!fs.existsSync(tsc)) {
  console.error(`${tsc} is missing: run \`npm ci\` in ${root}`);
  process.exit(2);
}
const out = check ? fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-dist-")) : path.join(root, "dist");
fs.rmSync(out, { recursive: true, force: true });
const builds = [
  ["cjs", ["--module", "commonjs", "--moduleResolution", "node10"], "commonjs"],
  ["esm", ["--module", "es2022", "--moduleResolution", "bundler"], "module"],
];
for (const [name, flags, type] of builds) {
  execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json"), "--outDir", path.join(out, name), ...flags], {
    stdio: "inherit",
  });
  fs.writeFileSync(path.join(out, name, "package.json"), `${JSON.stringify({ type }, null, 2)}\n`);
}
if (check) {
  const list = (dir) =>
    fs.readdirSync(dir, { recursive: true }).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map(String).sort();
  const committed = path.join(root, "dist");
  const want = list(out);
  const have = fs.existsSync(committed) ? list(committed) : [];
  const stale = [
    ...want.filter((f) => !have.includes(f) || !fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(committed, f)))),
    ...have.filter((f) => !want.includes(f)),
  ];
  fs.rmSync(out, { recursive: true, force: true });
  if (stale.length > 0) {
    console.error(`sdks/node/dist is out of date (${stale.join(", ")}): run \`npm run build\` in sdks/node and commit dist/`);
    process.exit(1);
  }
  console.log("sdks/node/dist is up to date");
}
