// The machine id and identity file are the Rust SDK's: the same keyed hash on this machine
// (against the Rust example `hostcli`), fixed vectors, and `nodeMachineId()` equal to npm's
// node-machine-id.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import {
  hashSensitive,
  loadIdentity,
  loadOrCreateIdentity,
  machineId,
  nodeMachineId,
  nodeMachineIdOriginal,
  osMachineId,
  randomIdentity,
  saltBytes,
  writeIdentity,
} from "../dist/cjs/identity.js";
import { required } from "./helpers.mjs";
import { runTelemetryCommand } from "../dist/index.cjs";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-id-"));

/** The Rust SDK's `telemetry status --json` for `hostcli` in a fresh home. */
function rustStatus(home, extra = {}) {
  const bin = required("TALLY_HOSTCLI", "point it at the Rust example (cargo build --release -p tally --example hostcli)");
  const r = spawnSync(bin, ["telemetry", "status", "--json"], {
    env: { PATH: process.env.PATH, HOME: home, ...extra },
    cwd: home,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test("identity: both SDKs send the same machine id on this machine", () => {
  const home = tmp();
  try {
    const rust = rustStatus(home);
    assert.equal(rust.machine_kind, osMachineId() === null ? null : "os");
    if (rust.machine) assert.equal(machineId("hostcli", null, null).hash, rust.machine);
    // After `telemetry reset` (a reset id mixed in), read from the file the Rust SDK wrote.
    const reset = spawnSync(required("TALLY_HOSTCLI", ""), ["telemetry", "reset"], { env: { PATH: process.env.PATH, HOME: home }, cwd: home });
    assert.equal(reset.status, 0, String(reset.stderr));
    const identity = loadIdentity(path.join(home, ".config", "tally", "hostcli", "identity.toml"));
    assert.ok(identity.reset);
    const after = rustStatus(home);
    assert.equal(machineId("hostcli", null, identity).hash, after.machine);
    assert.notEqual(after.machine, rust.machine);
    // One shared id per CI vendor.
    const ci = rustStatus(home, { GITHUB_ACTIONS: "true" });
    assert.equal(ci.machine_kind, "ci");
    assert.equal(machineId("hostcli", "github_actions", identity).hash, ci.machine);
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test("identity: the user's choice and identity files are shared with the Rust SDK", () => {
  const home = tmp();
  try {
    const options = { app: "hostcli", version: "1.0.0", vars: { HOME: home }, projectId: "7b581c0d-89b7-479e-b379-a76ab90b8754" };
    let out = "";
    assert.equal(runTelemetryCommand(options, ["local"], { write: (x) => (out += x) }), 0, out);
    const rust = rustStatus(home);
    assert.equal(rust.config_file, path.join(home, ".config", "tally", "hostcli", "config.toml"));
    assert.equal(rust.source, "no_project_id", "the Rust tool has no project here");
    // With a project, the Rust SDK reads the choice the Node SDK saved.
    fs.writeFileSync(path.join(home, "package.json"), JSON.stringify({ hostcli: { uuid: options.projectId } }));
    const withProject = rustStatus(home);
    assert.deepEqual([withProject.mode, withProject.source], ["local", "user_config"]);
    // And the Node SDK reads the Rust SDK's: `hostcli telemetry disable`.
    const r = spawnSync(required("TALLY_HOSTCLI", ""), ["telemetry", "disable"], { env: { PATH: process.env.PATH, HOME: home }, cwd: home });
    assert.equal(r.status, 0, String(r.stderr));
    out = "";
    runTelemetryCommand({ ...options, projectId: undefined, projectDir: home }, ["status", "--json"], { write: (x) => (out += x) });
    assert.deepEqual([JSON.parse(out).mode, JSON.parse(out).source], ["off", "user_config"]);
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test("identity: fixed vectors computed by the Rust SDK", () => {
  // `GITHUB_ACTIONS=true hostcli telemetry status --json` prints this machine id on any machine.
  assert.equal(machineId("hostcli", "github_actions", null).hash, "341893a9fdd35dfa09e224e87573a3dd650bf3dcf46eb27ba138fcb7e3178ab4");
  assert.equal(machineId("hostcli", "github_actions", null).kind, "ci");
  // Keyed by the app: another tool gets an unrelated id.
  assert.notEqual(machineId("other", "github_actions", null).hash, machineId("hostcli", "github_actions", null).hash);
  assert.equal(hashSensitive(Buffer.from("s"), "v"), hashSensitive(Buffer.from("s"), "v"));
  assert.notEqual(hashSensitive(Buffer.from("s"), "v"), hashSensitive(Buffer.from("t"), "v"));
  assert.equal(hashSensitive(Buffer.from("s"), "v").length, 16);
});

test("identity: without an OS id the install id stands in, and the id never contains the raw value", () => {
  const id = randomIdentity(false);
  const m = machineId("demo", null, id);
  assert.equal(m.hash.length, 64);
  const os = osMachineId();
  if (os !== null) {
    assert.equal(m.kind, "os");
    assert.ok(!m.hash.includes(os));
  } else {
    assert.equal(m.kind, "install_id");
  }
  assert.deepEqual(machineId("demo", null, id), m, "stable");
});

test("identity: the machine hash is kept between runs, and hashed again when what it hashes changes", () => {
  const dir = tmp();
  try {
    const cache = path.join(dir, "machine.cache");
    const identity = randomIdentity(false);
    const want = machineId("demo", null, identity).hash;
    assert.equal(machineId("demo", null, identity, cache).hash, want, "the first run hashes and keeps it");
    const line = fs.readFileSync(cache, "utf8");
    assert.match(line, /^[0-9a-f]{16} [0-9a-f]{64}\n$/);
    assert.equal(line.slice(17, 81), want);
    assert.ok(!line.includes(osMachineId() ?? identity.install_id), "the raw id is not kept");
    // A later run takes the kept hash without hashing (shown with a planted one).
    const planted = "ab".repeat(32);
    fs.writeFileSync(cache, `${line.slice(0, 16)} ${planted}\n`);
    assert.equal(machineId("demo", null, identity, cache).hash, planted);
    // A changed id (here: a reset mixed in) fails the check: hashed again and kept.
    const reset = { ...identity, reset: randomIdentity(false).install_id };
    const after = machineId("demo", null, reset).hash;
    assert.equal(machineId("demo", null, reset, cache).hash, after);
    assert.equal(fs.readFileSync(cache, "utf8").slice(17, 81), after);
    // Garbage, a cut line or an unwritable cache never fail the caller.
    for (const junk of ["", "x", `${line.slice(0, 16)} ${"zz".repeat(32)}\n`, line.slice(0, 40)]) {
      fs.writeFileSync(cache, junk);
      assert.equal(machineId("demo", null, reset, cache).hash, after, JSON.stringify(junk));
    }
    assert.equal(machineId("demo", null, reset, path.join(dir, "missing", "dir", "machine.cache")).hash, after);
    // CI ids are not kept (every CI run starts from a fresh home).
    fs.rmSync(cache);
    machineId("demo", "github_actions", identity, cache);
    assert.equal(fs.existsSync(cache), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("identity: the file is created once, also by processes racing", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, "x", "identity.toml");
    const first = loadOrCreateIdentity(file);
    assert.deepEqual(loadOrCreateIdentity(file), first);
    assert.equal(saltBytes(first).length, 32);
    const next = randomIdentity(true);
    writeIdentity(file, next, true);
    assert.deepEqual(loadIdentity(file), next);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ["identity.toml"], "no temporary file left");
    // Four processes create it at once: all agree on one.
    const race = path.join(dir, "race", "identity.toml");
    const script = `const {loadOrCreateIdentity}=require(${JSON.stringify(path.resolve("dist/cjs/identity.js"))});process.stdout.write(loadOrCreateIdentity(${JSON.stringify(race)}).salt)`;
    const runs = [0, 1, 2, 3].map(() => spawnSync(process.execPath, ["-e", script], { encoding: "utf8" }).stdout);
    assert.equal(new Set(runs).size, 1, runs.join(" "));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("identity: nodeMachineId() equals npm's node-machine-id", () => {
  const modules = required("TALLY_NODE_MODULES", "run `export TALLY_NODE_MODULES=\"$(crates/tally/tests/setup-node.sh)\"`");
  const m = require_(path.join(modules, "node-machine-id"));
  assert.equal(nodeMachineId(), m.machineIdSync());
  assert.equal(nodeMachineIdOriginal(), m.machineIdSync(true));
  assert.equal(nodeMachineId().length, 64);
});

import { createRequire } from "node:module";
const require_ = createRequire(import.meta.url);
