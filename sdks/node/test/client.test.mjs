// The client in process: record() is synchronous and never throws, what is queued is
// already scrubbed, off leaves no trace, debug and the first-run notice, the project a
// client creates, the queue bound, the telemetry command and its commander adapter, and
// both entry points.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";

import * as esm from "../dist/index.mjs";
import { createTelemetry, Event, runTelemetryCommand, addTelemetryCommand, isSensitive } from "../dist/index.mjs";
import { MemorySink, Sandbox, assertLeavesNoTrace } from "../dist/testing.mjs";
import { flusherDone } from "./helpers.mjs";
import { hashSensitive } from "../dist/cjs/identity.js";

const require = createRequire(import.meta.url);

function withSandbox(t) {
  const s = new Sandbox();
  t.after(() => s.remove());
  return s;
}

test("record: synchronous, returns nothing, never throws on any input", async (t) => {
  const s = withSandbox(t);
  const sink = new MemorySink();
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), transport: sink });
  const weird = [null, undefined, 42, {}, [], "Bad Name", Symbol("x"), new Event(""), { name: 5 }];
  for (const w of weird) assert.equal(tel.record(w), undefined);
  assert.equal(tel.record("command.run", { props: { a: {}, b: null, c: Symbol("s"), n: NaN, big: 10n ** 30n } }), undefined);
  const cyclic = new Event("command.run");
  cyclic.plugins.push({ toString: () => { throw new Error("boom"); } });
  assert.equal(tel.record(cyclic), undefined);
  assert.equal(await tel.flush(2000), true);
  const names = sink.names();
  assert.deepEqual(names, ["command.run"], "only the valid event");
  assert.deepEqual(Object.keys(sink.events()[0].props ?? {}).sort(), ["big"]);
});

test("record: strings scrubbed, sensitive values hashed, unknown plugins hashed, limits kept", async (t) => {
  const s = withSandbox(t);
  const sink = new MemorySink();
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), transport: sink, knownPlugins: ["graphql"] });
  tel.record(
    new Event("command.run")
      .prop("arg", "/home/alice/secret-project")
      .sensitive("name", "secret-project")
      .prop("long", "x".repeat(500))
      .prop("Bad Key", 1)
      .plugin("graphql")
      .plugin("acme-internal")
      .plugin("graphql")
      .duration(30 * 24 * 3600 * 1000),
  );
  tel.record(Event.error("EACCES: permission denied, open '/home/alice/x'"));
  tel.record(Event.error("ENOENT"));
  await tel.flush(2000);
  const [run, err, enoent] = sink.events();
  assert.ok(!run.props.arg.includes("alice"), run.props.arg);
  const salt = Buffer.from(fs.readFileSync(path.join(s.root, "config", "identity.toml"), "utf8").match(/salt = "([0-9a-f]+)"/)[1], "hex");
  assert.equal(run.props.name, hashSensitive(salt, "secret-project"));
  assert.equal(Buffer.byteLength(run.props.long), 128);
  assert.ok(!("Bad Key" in run.props));
  assert.deepEqual(run.plugins, ["graphql", `h:${hashSensitive(salt, "acme-internal")}`]);
  assert.equal(run.duration_ms, 7 * 24 * 3600 * 1000);
  assert.equal(err.error_kind, "other");
  assert.equal(enoent.error_kind, "ENOENT");
  assert.match(run.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (const e of sink.events()) for (const v of Object.values(e.props ?? {})) if (typeof v === "string") assert.ok(!isSensitive(v), v);
  const ctx = sink.batches[0].context;
  assert.equal(ctx.runtime, "node");
  assert.equal(ctx.runtime_version, process.versions.node);
  assert.equal(ctx.project, "7b581c0d-89b7-479e-b379-a76ab90b8754");
});

test("off: a disabled client creates no file and opens no socket", async (t) => {
  const s = withSandbox(t);
  const cases = [
    { defaultMode: "off" },
    { vars: { DO_NOT_TRACK: "1" } },
    { vars: { DEMO_TELEMETRY_DISABLED: "yes" } },
    { projectId: undefined, projectDir: s.root },
    { app: "Not A Name" },
  ];
  for (const extra of cases) {
    await assertLeavesNoTrace(s, async (endpoint) => {
      const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint, flushIntervalMs: 1, ...extra });
      assert.equal(tel.enabled, false, JSON.stringify(extra));
      for (let i = 0; i < 200; i++) tel.record(Event.commandRun("build"));
      assert.equal(await tel.flush(100), true);
      tel.shutdown();
    });
  }
});

test("off: the helper does catch a client that writes or connects", async (t) => {
  const s = withSandbox(t);
  await assert.rejects(
    assertLeavesNoTrace(s, (endpoint) => {
      const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint });
      tel.record(Event.commandRun("build"));
      tel.shutdown();
    }),
    /files were created/,
  );
  // Its files elsewhere, so that only the socket can give it away.
  const s2 = withSandbox(t);
  const elsewhere = withSandbox(t);
  const away = elsewhere.options("demo", "1.0.0");
  await assert.rejects(
    assertLeavesNoTrace(s2, async (endpoint) => {
      const tel = createTelemetry({ ...s2.options("demo", "1.0.0"), endpoint, dataDir: away.dataDir, configDir: away.configDir });
      tel.record(Event.commandRun("build"));
      await tel.flush(2000);
    }),
    /connection\(s\) were opened/,
  );
  // Files elsewhere and no flush: the flusher it starts at exit gives it away.
  const s3 = withSandbox(t);
  const away3 = withSandbox(t).options("demo", "1.0.0");
  await assert.rejects(
    assertLeavesNoTrace(s3, (endpoint) => {
      const tel = createTelemetry({ ...s3.options("demo", "1.0.0"), endpoint, dataDir: away3.dataDir, configDir: away3.configDir });
      tel.record(Event.commandRun("build"));
      tel.shutdown();
    }),
    /a process was started: spawn\(/,
  );
  await flusherDone(away3.dataDir);
});

test("debug: payloads are printed, nothing is sent, no identity is created", async (t) => {
  const s = withSandbox(t);
  await assertLeavesNoTrace(s, async (endpoint) => {
    const writes = [];
    const write = process.stderr.write;
    process.stderr.write = (chunk) => (writes.push(String(chunk)), true);
    try {
      const tel = createTelemetry({ ...s.options("demo", "1.0.0", { DEMO_TELEMETRY_DEBUG: "1" }), endpoint });
      tel.record(Event.commandRun("build"));
      await tel.flush(100);
      tel.shutdown();
    } finally {
      process.stderr.write = write;
    }
    const text = writes.join("");
    assert.match(text, /\[demo telemetry debug\] mode on \(the tool's default\); this payload would be sent; nothing was sent/);
    assert.match(text, /"event": "command.run"/);
  });
});

test("notice: the first run shows it and uploads nothing; the next run delivers both runs' events", async (t) => {
  const s = withSandbox(t);
  fs.rmSync(path.join(s.root, "config", "config.toml"), { force: true });
  const options = { ...s.options("demo", "1.0.0"), resendAfterMs: 0 };
  fs.rmSync(path.join(s.root, "config", "config.toml"), { force: true });
  const sink = new MemorySink();
  const writes = [];
  const write = process.stderr.write;
  process.stderr.write = (chunk) => (writes.push(String(chunk)), true);
  let first;
  try {
    first = createTelemetry({ ...options, transport: sink });
    first.record(Event.commandRun("build"));
    await first.flush(1000);
    first.shutdown();
  } finally {
    process.stderr.write = write;
  }
  assert.match(writes.join(""), /^Attention: demo collects anonymous usage data/);
  sink.assertEmpty();
  assert.match(fs.readFileSync(path.join(s.root, "config", "config.toml"), "utf8"), /notice_shown = true/);
  const second = createTelemetry({ ...options, transport: sink });
  second.record(Event.buildFinished(12));
  await second.flush(2000);
  assert.deepEqual(sink.names().sort(), ["build.finished", "command.run"]);
  assert.equal(second.outbox().len(), 0);
});

test("createProjectId: a client built before the project existed records for it", async (t) => {
  const s = withSandbox(t);
  const dir = path.join(s.root, "site");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "package.json"), '{\n  "name": "site"\n}\n');
  const sink = new MemorySink();
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), projectId: undefined, projectDir: dir, transport: sink });
  assert.equal(tel.enabled, false);
  const id = tel.createProjectId(dir, "package-json");
  assert.equal(tel.enabled, true);
  tel.record(Event.projectCreated(5));
  await tel.flush(2000);
  assert.equal(sink.assertRecorded("project.created") !== undefined, true);
  assert.equal(sink.batches[0].context.project, id);
});

test("queue: bounded, drops beyond it with one warning", async (t) => {
  const s = withSandbox(t);
  const sink = new MemorySink();
  const writes = [];
  const write = process.stderr.write;
  process.stderr.write = (chunk) => (writes.push(String(chunk)), true);
  try {
    const tel = createTelemetry({ ...s.options("demo", "1.0.0"), transport: sink, queueCapacity: 10, flushIntervalMs: 60000 });
    for (let i = 0; i < 25; i++) tel.record(Event.commandRun("build"));
    await tel.flush(2000);
    for (let i = 0; i < 25; i++) tel.record(Event.commandRun("build"));
    await tel.flush(2000);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(sink.events().length, 20);
  assert.equal(writes.filter((w) => w.includes("queue is full")).length, 1, writes.join(""));
});

test("command: status, local, show, disable deletes what is kept, enable, reset; unknown arguments", async (t) => {
  const s = withSandbox(t);
  const options = s.options("demo", "1.0.0");
  const run = (args) => {
    let out = "";
    const code = runTelemetryCommand(options, args, { write: (x) => (out += x) });
    return { code, out };
  };
  assert.match(run([]).out, /^telemetry: on \(decided by the tool's default\)/);
  assert.equal(JSON.parse(run(["status", "--json"]).out).source, "author_default");
  assert.match(run(["local"]).out, /^demo telemetry local: events are kept on this machine only \(saved in /);
  const tel = createTelemetry(options);
  assert.equal(tel.mode, "local");
  tel.record(Event.commandRun("build"));
  tel.shutdown();
  assert.match(run(["show"]).out, /^1 event waiting in /);
  assert.equal(JSON.parse(run(["show", "--json"]).out).queued[0].events[0].event, "command.run");
  const cache = path.join(s.root, "config", "machine.cache");
  assert.ok(fs.existsSync(cache), "the run kept its machine hash");
  const off = run(["disable"]).out;
  assert.match(off, /deleted the outbox: 1 unsent event, which will never be sent/);
  assert.match(off, /deleted the install id and salt/);
  assert.equal(fs.existsSync(path.join(s.root, "config", "identity.toml")), false);
  assert.equal(fs.existsSync(cache), false, "disable deletes the kept machine hash");
  assert.equal(JSON.parse(run(["status", "--json"]).out).mode, "off");
  assert.match(run(["enable"]).out, /enabled: anonymous usage data is sent/);
  fs.writeFileSync(cache, "stale");
  assert.equal(run(["reset"]).code, 0);
  assert.equal(fs.existsSync(cache), false, "reset deletes the kept machine hash");
  assert.match(fs.readFileSync(path.join(s.root, "config", "identity.toml"), "utf8"), /reset = "/);
  const bad = run(["frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /unexpected argument "frobnicate"/);
  assert.equal(run(["enable", "--json"]).code, 2);
  const noted = runTelemetryCommand({ ...options, vars: { DO_NOT_TRACK: "1" } }, ["enable"], { write: (x) => (t.diagnostic(x), x) });
  assert.equal(noted, 0);
});

test("command: the commander adapter mounts telemetry and its subcommands", async (t) => {
  const s = withSandbox(t);
  const { Command } = require("commander");
  const options = s.options("demo", "1.0.0");
  const out = [];
  const write = process.stdout.write;
  process.stdout.write = (chunk) => (out.push(String(chunk)), true);
  try {
    for (const args of [["telemetry", "local"], ["telemetry", "status", "--json"], ["telemetry"]]) {
      const program = new Command("demo").exitOverride();
      addTelemetryCommand(program, () => options);
      program.command("build").action(() => {});
      await program.parseAsync(["node", "demo", ...args]);
    }
  } finally {
    process.stdout.write = write;
  }
  const text = out.join("");
  assert.match(text, /demo telemetry local: events are kept/);
  assert.match(text, /"source": "user_config"/);
  assert.match(text, /telemetry: local \(decided by your choice in /);
});

test("entry points: ESM and CommonJS export the same API, with types", () => {
  const cjs = require("../dist/index.cjs");
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  for (const cond of ["import", "require"]) {
    for (const entry of [".", "./testing"]) {
      for (const f of [pkg.exports[entry][cond].types, pkg.exports[entry][cond].default]) {
        assert.ok(fs.existsSync(new URL(`../${f}`, import.meta.url)), f);
      }
    }
  }
  assert.deepEqual(pkg.dependencies ?? {}, {}, "no runtime dependencies");
  assert.equal(require("tally-telemetry").createTelemetry, cjs.createTelemetry);
});

test("facts: the kernel's major.minor version", () => {
  const { majorMinor } = require("../dist/cjs/facts.js");
  const cases = { "6.8.0-45-generic\n": "6.8", "6.18.44-fc-v1098": "6.18", "5.15": "5.15", 6: "6", "4.19.0+": "4.19", "": "", "x1.2": "", "10..1": "10." };
  for (const [release, want] of Object.entries(cases)) assert.equal(majorMinor(release), want, release);
});

test("record: the cached time formatting equals toISOString, and ids carry their millisecond", async () => {
  const { isoTime, uuidV7 } = require("../dist/cjs/event.js");
  const start = Date.parse("2026-12-31T23:59:58.990Z");
  for (let ms = start; ms < start + 2100; ms += 7) {
    assert.equal(isoTime(ms), new Date(ms).toISOString());
    const id = uuidV7(ms);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.replace(/-/g, "").slice(0, 12), 16), ms);
  }
  // The date is computed without Date: every kind of day, leap years and the range's ends.
  const edges = ["1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "0000-03-01T00:00:00.000Z", "1900-02-28T12:00:00.000Z",
    "2000-02-29T23:59:59.999Z", "2100-03-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "+010000-01-01T00:00:00.000Z", "-000001-12-31T00:00:00.000Z"];
  for (const e of edges) assert.equal(isoTime(Date.parse(e)), e);
  for (let i = 0; i < 20000; i++) {
    const ms = Math.floor((Math.random() - 0.3) * 2 ** 45);
    assert.equal(isoTime(ms), new Date(ms).toISOString());
  }
  const ids = new Set(Array.from({ length: 5000 }, () => uuidV7(start)));
  assert.equal(ids.size, 5000, "unique within one millisecond");
});
