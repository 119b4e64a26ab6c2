// The V8 code cache of the SDK's bundle (dist/index.cjs, scripts/entry.cjs): a recording run
// writes it once into the user's cache directory, later runs take it (V8 accepts it, so it
// is not written again), a junk or cut cache is refused by V8 and replaced, and a run with
// telemetry off, a debug run, a client with its own directories and
// NODE_DISABLE_COMPILE_CACHE write none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import { Home, root } from "./helpers.mjs";

const CACHE_NAME = /^sdk-[0-9a-f]{16}-v\d+\.\d+\.\d+-[a-z0-9]+-[0-9a-f]{8}\.v8$/;

function cacheFiles(dir) {
  try {
    return fs.readdirSync(dir).filter((n) => n.endsWith(".v8"));
  } catch {
    return [];
  }
}

function outboxEvents(home) {
  let n = 0;
  for (const f of fs.readdirSync(home.dataDir, { recursive: true }).map(String)) {
    if (!f.endsWith(".json") && !f.endsWith(".jsonl")) continue;
    n += fs.readFileSync(path.join(home.dataDir, f), "utf8").split("build.finished").length - 1;
  }
  return n;
}

function buildOk(home, extra = {}) {
  const r = home.run(["build"], extra);
  assert.equal(r.status, 0, r.stderr);
  return r;
}

test("code cache: the first recording run marks it wanted, the second fills it; later runs take it; junk, a cut file or an edited bundle is replaced", (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const dir = path.join(home.dir, ".cache", "tally");

  // The first run (no cache: a plain require) leaves only the header.
  buildOk(home);
  const [name, ...more] = cacheFiles(dir);
  assert.deepEqual(more, [], "one cache file");
  assert.match(name, CACHE_NAME);
  const file = path.join(dir, name);
  assert.equal(fs.statSync(file).size, 24, "the header alone");
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  // The second compiles through V8's cache API and saves what it compiled.
  buildOk(home);
  assert.ok(fs.statSync(file).size > 10000, "the cache holds the compiled functions");
  const full = fs.statSync(file);

  // Taken: V8 accepted it, so it is not written again, and the runs record as before.
  for (let i = 0; i < 2; i++) buildOk(home);
  const later = fs.statSync(file);
  assert.equal(later.ino, full.ino, "not rewritten");
  assert.equal(later.mtimeMs, full.mtimeMs, "not rewritten");
  assert.equal(outboxEvents(home), 4, "every run recorded its event");

  // Junk under the right name, then a cut cache: each is refused (by its header, by V8),
  // the run records, and the cache is written anew.
  const good = fs.readFileSync(file);
  for (const bad of [Buffer.from("not a code cache at all"), good.subarray(0, good.length >> 1)]) {
    fs.writeFileSync(file, bad);
    buildOk(home);
    const now = fs.readFileSync(file);
    assert.ok(!now.equals(bad), "replaced");
    assert.ok(now.length > 10000);
  }
  assert.equal(outboxEvents(home), 6);
  assert.deepEqual(cacheFiles(dir), [name]);

  // The entry file edited in place (patched in node_modules): its size and time are not the
  // cache's, so the cache is not given to V8 and is written anew for the edited file.
  const copy = fs.mkdtempSync(path.join(home.dir, "sdk-copy-"));
  fs.cpSync(path.join(root, "dist"), path.join(copy, "dist"), { recursive: true });
  fs.cpSync(path.join(root, "examples"), path.join(copy, "examples"), { recursive: true });
  const sdk = path.join(copy, "dist", "index.cjs");
  fs.appendFileSync(sdk, "// patched\n");
  const before = fs.readFileSync(file);
  const patched = spawnSync(process.execPath, [path.join(copy, "examples", "nodecli.mjs"), "-C", home.project, "build"], {
    cwd: home.project,
    env: home.env(),
    encoding: "utf8",
  });
  assert.equal(patched.status, 0, patched.stderr);
  const after = fs.readFileSync(file);
  assert.ok(!after.equals(before), "written anew for the edited bundle");
  assert.equal(after.readDoubleLE(8), fs.statSync(sdk).size, "the header names the edited bundle's size");
  assert.equal(outboxEvents(home), 7);
});

test("code cache: telemetry off, a debug run, NODE_DISABLE_COMPILE_CACHE and a sandboxed client write none", (t) => {
  const home = new Home();
  t.after(() => home.remove());
  for (const extra of [{ DO_NOT_TRACK: "1" }, { NODECLI_TELEMETRY_DISABLED: "1" }, { NODECLI_TELEMETRY_DEBUG: "1" }]) {
    const r = buildOk(home, extra);
    assert.deepEqual(home.files(), [], `${JSON.stringify(extra)} left files (${r.stderr})`);
  }
  buildOk(home, { NODE_DISABLE_COMPILE_CACHE: "1" });
  assert.deepEqual(cacheFiles(path.join(home.dir, ".cache", "tally")), []);
  assert.ok(outboxEvents(home) >= 1, "the run still recorded");

  // A client given its own directories (the test kit's sandbox) keeps out of the user's.
  const script = `
    const { createTelemetry, Event } = require(${JSON.stringify(path.join(root, "dist", "index.cjs"))});
    const { Sandbox } = require(${JSON.stringify(path.join(root, "dist", "testing.cjs"))});
    const s = new Sandbox();
    const t = createTelemetry(s.options("demo", "1.0.0"));
    t.record(Event.commandRun("build"));
    t.shutdown();
    s.remove();`;
  const r = spawnSync(process.execPath, ["-e", script], { env: { PATH: process.env.PATH, HOME: home.dir }, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(cacheFiles(path.join(home.dir, ".cache", "tally")), []);
});

test("code cache: XDG_CACHE_HOME is where it goes; a month-old cache of another build is removed, a recent one kept", (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const dir = path.join(home.dir, "xdg-cache", "tally");
  fs.mkdirSync(dir, { recursive: true });
  const old = path.join(dir, "sdk-0000000000000000-1-1-v18.0.0-x64.v8");
  const recent = path.join(dir, "sdk-1111111111111111-1-1-v18.0.0-x64.v8");
  const other = path.join(dir, "unrelated.v8");
  for (const f of [old, recent, other]) fs.writeFileSync(f, "x");
  const monthAgo = new Date(Date.now() - 40 * 24 * 3600 * 1000);
  fs.utimesSync(old, monthAgo, monthAgo);
  fs.utimesSync(other, monthAgo, monthAgo);
  buildOk(home, { XDG_CACHE_HOME: path.join(home.dir, "xdg-cache") });
  const names = cacheFiles(dir);
  assert.ok(!names.includes(path.basename(old)), "the month-old cache is gone");
  assert.ok(names.includes(path.basename(recent)) && names.includes("unrelated.v8"), "the others stay");
  assert.equal(names.filter((n) => CACHE_NAME.test(n) && n !== path.basename(recent)).length, 1, "this build's cache");
  assert.deepEqual(cacheFiles(path.join(home.dir, ".cache", "tally")), []);
});

test("code cache: the entry exports the same with and without the cache, to require and to import", async (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const keys = (extra) => {
    const r = spawnSync(
      process.execPath,
      ["-e", `const m = require(${JSON.stringify(path.join(root, "dist", "index.cjs"))}); console.log(Object.keys(m).sort().join(), typeof m.createTelemetry)`],
      { encoding: "utf8", env: { PATH: process.env.PATH, HOME: home.dir, ...extra } },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const plain = keys({ TALLY_CODE_CACHE: "0" });
  assert.match(plain, /createTelemetry.* function/);
  for (let i = 0; i < 2; i++) buildOk(home);
  assert.ok(cacheFiles(path.join(home.dir, ".cache", "tally")).length === 1);
  assert.equal(keys({}), plain, "from the cache");
  // Imported as CommonJS from an ES module: Node's lexer finds the names in the file.
  const esm = await import("../dist/index.cjs");
  for (const name of plain.split(" ")[0].split(",")) assert.notEqual(esm[name], undefined, name);
});

test("code cache: a stack trace names the same lines of index.cjs with and without the cache", (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const script = `
    const m = require(${JSON.stringify(path.join(root, "dist", "index.cjs"))});
    try { m.createProjectId(${JSON.stringify(path.join(home.dir, "missing", "dir"))}, "app", "package"); }
    catch (e) { console.log(String(e.stack).split("\\n").filter((l) => l.includes("index.cjs")).join("\\n")); }`;
  const frames = (extra) => {
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", env: { PATH: process.env.PATH, HOME: home.dir, ...extra } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const plain = frames({ TALLY_CODE_CACHE: "0" });
  assert.match(plain, /index\.cjs:\d+:\d+/);
  for (let i = 0; i < 2; i++) buildOk(home);
  assert.equal(frames({}), plain);
});

test("code cache: one file per set of Node options, so alternating options rewrite nothing", (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const dir = path.join(home.dir, ".cache", "tally");
  const withOptions = { NODE_OPTIONS: "--max-old-space-size=1024" };
  for (let i = 0; i < 2; i++) {
    buildOk(home);
    buildOk(home, withOptions);
  }
  const names = cacheFiles(dir).sort();
  assert.equal(names.length, 2, names.join(", "));
  const before = names.map((n) => fs.statSync(path.join(dir, n)).mtimeMs);
  for (let i = 0; i < 2; i++) {
    buildOk(home);
    buildOk(home, withOptions);
  }
  assert.deepEqual(names.map((n) => fs.statSync(path.join(dir, n)).mtimeMs), before, "neither rewritten");
  for (const n of names) assert.ok(fs.statSync(path.join(dir, n)).size > 10000);
});
