// The example CLI's wall time and peak memory with telemetry on vs off, the endpoint up
// (a real `tally serve`), refused, and accepting but never answering. Runs are interleaved,
// each scenario in its own home; the medians are reported with their difference to two
// baselines measured in the same run: telemetry off (`DO_NOT_TRACK=1`, the SDK loaded,
// the target's "off") and the same command not loading the SDK at all.
//
//   TALLY_BIN=target/release/tally node sdks/node/bench/cli.mjs [RUNS]
import { spawnSync } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Collector, Home, nodecli } from "../test/helpers.mjs";

const runs = Number(process.argv[2] ?? 30);
const rss = path.join(path.dirname(fileURLToPath(import.meta.url)), "rss.cjs");

const collector = await Collector.start();
const refusedPort = await new Promise((ok) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => ok(p));
  });
});
const held = [];
const blackhole = net.createServer((s) => held.push(s));
await new Promise((ok) => blackhole.listen(0, "127.0.0.1", ok));
// The blackhole must not be served by this process's event loop while a child runs
// synchronously: it accepts in the kernel's backlog, which is what a silent server does.

const scenarios = [
  ["no SDK loaded", { NODECLI_OFF: "1" }],
  ["off (`DO_NOT_TRACK=1`)", { DO_NOT_TRACK: "1" }],
  ["on, endpoint up", { NODECLI_ENDPOINT: collector.url }],
  ["on, endpoint refused", { NODECLI_ENDPOINT: `http://127.0.0.1:${refusedPort}` }],
  ["on, endpoint never answers", { NODECLI_ENDPOINT: `http://127.0.0.1:${blackhole.address().port}` }],
  ["local (no endpoint)", {}],
];
const homes = scenarios.map(() => new Home());
const results = scenarios.map(() => ({ ms: [], kb: [] }));

function once(i) {
  const home = homes[i];
  const started = performance.now();
  const r = spawnSync(process.execPath, ["-r", rss, nodecli, "-C", home.project, "build"], {
    cwd: home.project,
    env: home.env(scenarios[i][1]),
    encoding: "utf8",
  });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${scenarios[i][0]}: ${r.stderr}`);
  const kb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)[1]);
  return { ms, kb };
}

// Warm-up: the first run of each home creates its identity and sends nothing old.
for (let i = 0; i < scenarios.length; i++) once(i);
for (let r = 0; r < runs; r++) {
  for (let i = 0; i < scenarios.length; i++) {
    const { ms, kb } = once(i);
    results[i].ms.push(ms);
    results[i].kb.push(kb);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];
const none = { ms: median(results[0].ms), kb: median(results[0].kb) };
const off = { ms: median(results[1].ms), kb: median(results[1].kb) };
const signed = (x, digits) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
console.log(`example CLI \`nodecli build\`, ${runs} runs each, interleaved`);
console.log("| scenario | median wall ms | p90 wall ms | vs off | vs no SDK | median peak RSS MB | vs off | vs no SDK |");
console.log("|---|---|---|---|---|---|---|---|");
scenarios.forEach(([name], i) => {
  const ms = median(results[i].ms);
  const kb = median(results[i].kb);
  console.log(
    `| ${name} | ${ms.toFixed(1)} | ${p90(results[i].ms).toFixed(1)} | ${signed(ms - off.ms, 1)} | ${signed(ms - none.ms, 1)} | ` +
      `${(kb / 1024).toFixed(1)} | ${signed((kb - off.kb) / 1024, 1)} | ${signed((kb - none.kb) / 1024, 1)} |`,
  );
});
for (const s of held) s.destroy();
blackhole.close();
await collector.stop();
for (const h of homes) h.remove();
