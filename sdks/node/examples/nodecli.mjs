#!/usr/bin/env node
// A small Node.js tool that embeds the tally Node SDK the way a real CLI would.
//
//   nodecli new <dir>              create a project (writes its telemetry id), record project.created
//   nodecli build [--events N] [--work-ms T] [--flush-ms T]
//                                  pretend to build, record build.finished (+ N command.run);
//                                  with --flush-ms, wait up to T ms for delivery before exiting
//   nodecli fail                   record an error with a bounded kind, exit 1
//   nodecli telemetry …            status [--json] | enable | disable | local | show [--json] | reset
//
// Environment: NODECLI_ENDPOINT (collector URL), NODECLI_RESEND_AFTER_MS, NODECLI_FLUSH_GAP_MS, NODECLI_DEFAULT
// (on, off for opt-in, local), NODECLI_OFF=1 (`build` without loading the SDK at all: the
// benchmark's baseline); and the SDK's own variables (DO_NOT_TRACK,
// NODECLI_TELEMETRY_DISABLED, NODECLI_TELEMETRY_DEBUG, NODECLI_ENV, TALLY_POLICY).
import { parseArgs } from "node:util";

// A real tool writes `import { createTelemetry, Event, … } from "tally-telemetry";`.
const tally = process.env.NODECLI_OFF ? null : await import("../dist/index.mjs");
const { createTelemetry, Event, runTelemetryCommand, parseMode } = tally ?? {};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  strict: false,
  options: {
    dir: { type: "string", short: "C" },
    events: { type: "string" },
    "work-ms": { type: "string" },
    "flush-ms": { type: "string" },
  },
});

// This is all a tool author writes to set telemetry up. The `telemetry` command gets these
// options, other commands build a client from them.
const options = {
  app: "nodecli",
  version: "1.0.0",
  projectDir: values.dir ?? process.cwd(),
  hostFacts: true,
  knownPlugins: ["sass", "minify", "i18n"],
  endpoint: process.env.NODECLI_ENDPOINT,
  defaultMode: (tally && parseMode(process.env.NODECLI_DEFAULT ?? "on")) ?? "on",
  resendAfterMs: process.env.NODECLI_RESEND_AFTER_MS ? Number(process.env.NODECLI_RESEND_AFTER_MS) : undefined,
  flushGapMs: process.env.NODECLI_FLUSH_GAP_MS ? Number(process.env.NODECLI_FLUSH_GAP_MS) : undefined,
};

const [command, ...rest] = positionals;
const started = performance.now();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

switch (command) {
  case "telemetry":
    process.exitCode = runTelemetryCommand(options, process.argv.slice(process.argv.indexOf("telemetry") + 1));
    break;
  case "new": {
    const telemetry = createTelemetry(options);
    const dir = rest[0];
    const fs = await import("node:fs");
    fs.mkdirSync(dir, { recursive: true });
    if (!fs.existsSync(`${dir}/package.json`)) fs.writeFileSync(`${dir}/package.json`, `{\n  "name": "site"\n}\n`);
    // Through the client, so that it records for the project it just created.
    telemetry.createProjectId(dir, "package-json");
    telemetry.record(Event.projectCreated(performance.now() - started));
    console.log(`created ${dir}`);
    break;
  }
  case "build": {
    const telemetry = tally ? createTelemetry(options) : null;
    telemetry?.record(Event.commandRun("build").plugin("sass").plugin("minify"));
    for (let i = 0; i < Number(values.events ?? 0); i++) telemetry?.record(Event.commandRun("build"));
    await sleep(Number(values["work-ms"] ?? 0));
    telemetry?.record(Event.buildFinished(performance.now() - started).prop("files", 412));
    if (values["flush-ms"] && telemetry) await telemetry.flush(Number(values["flush-ms"]));
    console.log("built");
    break;
  }
  case "fail": {
    const telemetry = createTelemetry(options);
    telemetry.record(Event.error("EACCES").prop("command", "fail"));
    console.error("error: permission denied");
    process.exitCode = 1;
    break;
  }
  default:
    console.error("usage: nodecli new <dir> | build [--events N] [--work-ms T] [--flush-ms T] | fail | telemetry …");
    process.exitCode = 2;
}
