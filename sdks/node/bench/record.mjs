// The cost of record() on the host's stack, against a baseline measured in the same run:
// building the same Event without recording it. The client is in local mode; events are
// recorded in rounds of 500 (one batch), and between rounds flush() writes them to the
// outbox, untimed, as the sender would while the host works.
//
//   node sdks/node/bench/record.mjs [N]
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomUUID } from "node:crypto";

import { createTelemetry, Event } from "../dist/index.mjs";

const n = Number(process.argv[2] ?? 100000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-bench-"));
const policy = path.join(dir, "policy.toml");
fs.writeFileSync(policy, 'telemetry = "allow"\n');
const options = {
  app: "demo",
  version: "1.0.0",
  projectId: "7b581c0d-89b7-479e-b379-a76ab90b8754",
  configDir: path.join(dir, "config"),
  dataDir: path.join(dir, "data"),
  policyPath: policy,
  defaultMode: "local",
  vars: {},
  queueCapacity: 1000,
  batchSize: 500,
  flushIntervalMs: 3_600_000,
};
const t = createTelemetry(options);
const off = createTelemetry({ ...options, defaultMode: "off" });
const make = (i) => Event.commandRun("build").plugin("sass").plugin("minify").prop("files", i).duration(12);

async function time(f) {
  let ns = 0n;
  for (let done = 0; done < n; done += 500) {
    const start = process.hrtime.bigint();
    for (let i = done; i < done + 500; i++) f(i);
    ns += process.hrtime.bigint() - start;
    await t.flush(10_000);
  }
  return Number(ns) / n;
}
let sink = 0;
// Warm up every path, then measure each three times and keep the best.
for (let r = 0; r < 2; r++) {
  await time((i) => (sink += make(i).props.length));
  await time((i) => t.record(make(i)));
  await time((i) => off.record(make(i)));
}
const best = async (f) => Math.min(await time(f), await time(f), await time(f));
const baseline = await best((i) => (sink += make(i).props.length));
const recorded = await best((i) => t.record(make(i)));
const disabled = await best((i) => off.record(make(i)));
// Calibration on this machine, in the same run: two calls every record() makes one of.
const iso = await best((i) => (sink += new Date(1796170313484 + i).toISOString().length));
const uuid = await best(() => (sink += randomUUID().length));
t.shutdown();
fs.rmSync(dir, { recursive: true, force: true });
console.log(`record() on, ${n} events: ${recorded.toFixed(0)} ns/event (building the event alone: ${baseline.toFixed(0)} ns; record() costs ${(recorded - baseline).toFixed(0)} ns more, ${(recorded / baseline).toFixed(1)}x)`);
console.log(`record() off: ${disabled.toFixed(0)} ns/event (${(disabled - baseline).toFixed(0)} ns more than building it)`);
console.log(`for comparison: new Date().toISOString() ${iso.toFixed(0)} ns, crypto.randomUUID() ${uuid.toFixed(0)} ns`);
if (sink < 0) console.log(sink);
