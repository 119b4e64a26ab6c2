// The example CLI's wall time and peak memory with telemetry on vs off, the endpoint up
// (a real `tally serve`), refused, and accepting but never answering. Runs are interleaved,
// each scenario in its own home; the medians are reported with their difference to two
// baselines measured in the same run: telemetry off (`DO_NOT_TRACK=1`, the SDK loaded,
// the target's "off") and the same command not loading the SDK at all.
//
//   TALLY_BIN=target/release/tally node sdks/node/bench/cli.mjs [RUNS]
//   node sdks/node/bench/cli.mjs RUNS --quiet
//
// --quiet runs only the scenarios that start no other process (no SDK, off, local): no
// collector and no flusher share the cores with the measured runs, so more runs of the
// three give a steadier comparison of what the SDK itself costs.
import { spawnSync } from "node:child_process";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Collector, flusherDone, Home, nodecli, sentLog } from "../test/helpers.mjs";

const runs = Number(process.argv[2] ?? 30);
const quiet = process.argv.includes("--quiet");
console.log(`load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
const rss = path.join(path.dirname(fileURLToPath(import.meta.url)), "rss.cjs");

const collector = quiet ? null : await Collector.start();
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

const all = [
  ["no SDK loaded", { NODECLI_OFF: "1" }],
  ["off (`DO_NOT_TRACK=1`)", { DO_NOT_TRACK: "1" }],
  ["on, endpoint up", { NODECLI_ENDPOINT: collector?.url }],
  ["on, endpoint up, a flusher every run", { NODECLI_ENDPOINT: collector?.url, NODECLI_FLUSH_GAP_MS: "0" }],
  ["on, endpoint refused", { NODECLI_ENDPOINT: `http://127.0.0.1:${refusedPort}` }],
  ["on, endpoint never answers", { NODECLI_ENDPOINT: `http://127.0.0.1:${blackhole.address().port}` }],
  ["local (no endpoint)", {}],
];
const scenarios = quiet ? all.filter(([, extra]) => !("NODECLI_ENDPOINT" in extra)) : all;
const homes = scenarios.map(() => new Home());
const results = scenarios.map(() => ({ ms: [], kb: [], cpu: [] }));

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
  const cpu = Number(/cpu_us=(\d+)/.exec(r.stderr)[1]) / 1000;
  return { ms, kb, cpu };
}

// Warm-up: the first run of each home creates its identity and sends nothing old.
for (let i = 0; i < scenarios.length; i++) once(i);
for (let r = 0; r < runs; r++) {
  for (let i = 0; i < scenarios.length; i++) {
    const { ms, kb, cpu } = once(i);
    results[i].ms.push(ms);
    results[i].kb.push(kb);
    results[i].cpu.push(cpu);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];
const none = { ms: median(results[0].ms), kb: median(results[0].kb), cpu: median(results[0].cpu) };
const off = { ms: median(results[1].ms), kb: median(results[1].kb), cpu: median(results[1].cpu) };
const signed = (x, digits) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
console.log(`example CLI \`nodecli build\`, ${runs} runs each, interleaved`);
console.log(
  "| scenario | median wall ms | p90 wall ms | vs off | vs no SDK | median CPU ms | vs off | vs no SDK | median peak RSS MB | vs off | vs no SDK |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
scenarios.forEach(([name], i) => {
  const ms = median(results[i].ms);
  const kb = median(results[i].kb);
  const cpu = median(results[i].cpu);
  console.log(
    `| ${name} | ${ms.toFixed(1)} | ${p90(results[i].ms).toFixed(1)} | ${signed(ms - off.ms, 1)} | ${signed(ms - none.ms, 1)} | ` +
      `${cpu.toFixed(1)} | ${signed(cpu - off.cpu, 1)} | ${signed(cpu - none.cpu, 1)} | ` +
      `${(kb / 1024).toFixed(1)} | ${signed((kb - off.kb) / 1024, 1)} | ${signed((kb - none.kb) / 1024, 1)} |`,
  );
});
// The machine's own noise is bimodal (runs of the same command differ by about 10 ms of CPU,
// with or without the SDK), which moves a median by that much: the lower quartile and the
// mean are steadier comparisons.
const p25 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.25)];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log("\n| scenario | p25 wall ms | vs off | p25 CPU ms | vs off | mean CPU ms | vs off |");
console.log("|---|---|---|---|---|---|---|");
const [ow, oc, om] = [p25(results[1].ms), p25(results[1].cpu), mean(results[1].cpu)];
scenarios.forEach(([name], i) => {
  const [w, c, m] = [p25(results[i].ms), p25(results[i].cpu), mean(results[i].cpu)];
  console.log(`| ${name} | ${w.toFixed(1)} | ${signed(w - ow, 1)} | ${c.toFixed(1)} | ${signed(c - oc, 1)} | ${m.toFixed(1)} | ${signed(m - om, 1)} |`);
});
// Each run that sends hands its events to a detached flusher: wait for the last ones, and
// check that the endpoint that is up got every event of every run.
await Promise.all(homes.map((h) => flusherDone(h.dataDir)));
if (collector) {
  const delivered = [2, 3].map((i) => sentLog(homes[i].dataDir).reduce((n, r) => n + r.events.length, 0));
  console.log(`\nendpoint up: ${delivered.join(" and ")} of ${2 * (runs + 1)} events delivered by the flushers by the end of the run (the rest wait in the outbox for the next run after the gap)`);
  await collector.stop();
}
console.log(`load average at end ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
for (const s of held) s.destroy();
blackhole.close();
for (const h of homes) h.remove();
