// The example CLI's process CPU time, this checkout's SDK against another's, in one run:
// off and local for both builds, and this build's local with its code cache turned off
// (`TALLY_CODE_CACHE=0`). Runs are interleaved, each scenario in its own home; prints the
// lower quartile, the median and the mean, each also as the difference to the other build's
// off.
//
//   git worktree add /tmp/old <commit>
//   node sdks/node/bench/ab.mjs [RUNS] /tmp/old
import { spawnSync } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Home } from "../test/helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..", "..");
const runs = Number(process.argv[2] ?? 100);
const other = path.resolve(process.argv[3] ?? "");
if (!process.argv[3]) {
  console.error("usage: node sdks/node/bench/ab.mjs RUNS OTHER_CHECKOUT");
  process.exit(2);
}
const rss = path.join(here, "rss.cjs");
const scenarios = [
  ["off, other", other, { DO_NOT_TRACK: "1" }],
  ["off, this", repo, { DO_NOT_TRACK: "1" }],
  ["local, other", other, {}],
  ["local, this, TALLY_CODE_CACHE=0", repo, { TALLY_CODE_CACHE: "0" }],
  ["local, this", repo, {}],
];
const homes = scenarios.map(() => new Home());
const cpu = scenarios.map(() => []);
function once(i) {
  const [, root, extra] = scenarios[i];
  const home = homes[i];
  const cli = path.join(root, "sdks", "node", "examples", "nodecli.mjs");
  const r = spawnSync(process.execPath, ["-r", rss, cli, "-C", home.project, "build"], {
    cwd: home.project,
    env: home.env(extra),
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${scenarios[i][0]}: ${r.stderr}`);
  return Number(/cpu_us=(\d+)/.exec(r.stderr)[1]) / 1000;
}
console.log(`load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}; ${runs} runs each; other: ${other}`);
// Two warm-up runs per home: the identity, and the code cache's header then its data.
for (let w = 0; w < 2; w++) for (let i = 0; i < scenarios.length; i++) once(i);
for (let r = 0; r < runs; r++) for (let i = 0; i < scenarios.length; i++) cpu[i].push(once(i));
const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * p)];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stats = (xs) => [q(xs, 0.25), q(xs, 0.5), mean(xs)];
const base = stats(cpu[0]);
const signed = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(1)}`;
console.log("| scenario | CPU p25 ms | vs other's off | median | vs | mean | vs |\n|---|---|---|---|---|---|---|");
scenarios.forEach(([name], i) => {
  const s = stats(cpu[i]);
  console.log(`| ${name} | ${s.map((x, k) => `${x.toFixed(1)} | ${signed(x - base[k])}`).join(" | ")} |`);
});
console.log(`load average at end ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
for (const h of homes) h.remove();
