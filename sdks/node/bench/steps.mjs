// The SDK's own work inside a short command, step by step: importing it, createTelemetry,
// the first and second record() and the exit handler, with telemetry off (`DO_NOT_TRACK=1`,
// the baseline measured in the same run), local, and on with an endpoint (a refused port:
// a short run never posts, it hands its events to the detached flusher). Each run is a
// fresh process (the first calls are what a command pays: V8 compiling the code they run,
// Node's lazy parts); the modes are interleaved. Prints the lower quartile and the median of
// each step in ms, and the new-space bytes each step allocated (no garbage collection
// happens: the run has a large young generation, so the bytes are all counted).
//
//   node sdks/node/bench/steps.mjs [RUNS] [SDK_ENTRY]
//
// SDK_ENTRY (default ../dist/index.mjs) compares another build, e.g. a previous commit's
// `dist/` checked out elsewhere.
import { spawnSync } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Home } from "../test/helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const runs = Number(process.argv[2] ?? 30);
const entry = path.resolve(process.argv[3] ?? path.join(here, "..", "dist", "index.mjs"));

// The measured process: the example CLI's `build`, timed around each SDK call.
const child = `
const v8 = require("node:v8");
const used = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_used_size;
const marks = [];
const mark = (name) => marks.push([name, performance.now(), used()]);
(async () => {
  mark("start");
  const tally = await import(${JSON.stringify(entry)});
  mark("import");
  const telemetry = tally.createTelemetry({ app: "nodecli", version: "1.0.0", projectDir: process.cwd(), hostFacts: true,
    knownPlugins: ["sass", "minify", "i18n"], defaultMode: "on", endpoint: process.env.STEPS_ENDPOINT });
  mark("createTelemetry");
  telemetry.record(tally.Event.commandRun("build").plugin("sass").plugin("minify"));
  mark("first record");
  telemetry.record(tally.Event.buildFinished(12).prop("files", 412));
  mark("second record");
  telemetry.shutdown();
  mark("exit handler");
  process.stdout.write(JSON.stringify(marks));
})();
`;

const modes = [
  ["off (`DO_NOT_TRACK=1`)", { DO_NOT_TRACK: "1" }],
  ["local", {}],
  ["on, endpoint set", { STEPS_ENDPOINT: "http://127.0.0.1:9" }],
];
const homes = modes.map(() => new Home());
const results = modes.map(() => []);
console.log(`load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}; ${runs} runs per mode; ${entry}`);
for (let r = -1; r < runs; r++) {
  modes.forEach(([, extra], i) => {
    const home = homes[i];
    const out = spawnSync(process.execPath, ["--max-semi-space-size=64", "-e", child], {
      cwd: home.project,
      env: home.env(extra),
      encoding: "utf8",
    });
    if (out.status !== 0) throw new Error(out.stderr);
    // The first run of each home creates its identity: not counted.
    if (r >= 0) results[i].push(JSON.parse(out.stdout));
  });
}
const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * p)];
const steps = results[0][0].map(([name]) => name).slice(1);
const sdkSteps = steps.slice(1); // everything after the import
console.log(`\n| mode | ${steps.map((s) => `${s} p25 / p50 ms`).join(" | ")} | SDK calls (after import) p25 / p50 ms | vs off | allocated KB |`);
console.log(`|---|${steps.map(() => "---|").join("")}---|---|---|`);
const totals = results.map((rs) => rs.map((m) => m[m.length - 1][1] - m[1][1]));
modes.forEach(([name], i) => {
  const rs = results[i];
  const cells = steps.map((_, j) => {
    const d = rs.map((m) => m[j + 1][1] - m[j][1]);
    return `${q(d, 0.25).toFixed(2)} / ${q(d, 0.5).toFixed(2)}`;
  });
  const t = totals[i];
  const vs = `${(q(t, 0.25) - q(totals[0], 0.25)).toFixed(2)} / ${(q(t, 0.5) - q(totals[0], 0.5)).toFixed(2)}`;
  const kb = q(rs.map((m) => m[m.length - 1][2] - m[1][2]), 0.5) / 1024;
  console.log(`| ${name} | ${cells.join(" | ")} | ${q(t, 0.25).toFixed(2)} / ${q(t, 0.5).toFixed(2)} | +${vs} | ${kb.toFixed(0)} |`);
});
console.log(`\n(${sdkSteps.join(", ")}); load average at end ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
for (const h of homes) h.remove();
