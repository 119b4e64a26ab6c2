// The SDK's own SHA-256, HMAC and random bytes (written so that a run never loads
// node:crypto) against node:crypto itself, and the example CLI's built-in modules.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { hex, hmacSha256, sha256 } from "../dist/cjs/sha256.js";
import { randomBytes, randomFill, randomUuid } from "../dist/cjs/random.js";
import { Home, nodecli } from "./helpers.mjs";

test("sha256: equals node:crypto for every length across the first blocks, and for large inputs", () => {
  for (let n = 0; n <= 300; n++) {
    const data = crypto.randomBytes(n);
    assert.equal(hex(sha256(data)), crypto.createHash("sha256").update(data).digest("hex"), `length ${n}`);
  }
  for (const n of [1000, 4096, 65537, 1 << 20]) {
    const data = crypto.randomBytes(n);
    assert.equal(hex(sha256(data)), crypto.createHash("sha256").update(data).digest("hex"), `length ${n}`);
  }
  // FIPS 180-2 vectors, and a string hashed as its UTF-8 bytes.
  assert.equal(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(hex(sha256("é✓")), crypto.createHash("sha256").update("é✓").digest("hex"));
});

test("hmacSha256: equals node:crypto for keys shorter than, equal to and longer than a block", () => {
  for (const keyLength of [0, 1, 16, 32, 63, 64, 65, 100, 200]) {
    for (const messageLength of [0, 1, 55, 56, 64, 119, 120, 1000]) {
      const key = crypto.randomBytes(keyLength);
      const message = crypto.randomBytes(messageLength);
      assert.equal(
        hex(hmacSha256(key, message)),
        crypto.createHmac("sha256", key).update(message).digest("hex"),
        `key ${keyLength}, message ${messageLength}`,
      );
    }
  }
  // RFC 4231 test case 2, with strings as UTF-8.
  assert.equal(
    hex(hmacSha256("Jefe", "what do ya want for nothing?")),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

test("random: bytes differ between calls and fill the whole buffer; UUIDs are v4", () => {
  const seen = new Set();
  for (let i = 0; i < 1000; i++) seen.add(randomBytes(16).toString("hex"));
  assert.equal(seen.size, 1000);
  // Every byte position takes many values: nothing is left zero.
  const big = randomFill(new Uint8Array(4096));
  for (let at = 0; at < 16; at++) {
    const values = new Set();
    for (let i = at; i < big.length; i += 16) values.add(big[i]);
    assert.ok(values.size > 100, `byte ${at} took only ${values.size} values`);
  }
  for (let i = 0; i < 100; i++) assert.match(randomUuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("a run with telemetry on loads no built-in module that a run with it off does not", () => {
  // Which built-in modules the example CLI loaded, read at exit: node:crypto (8-12 ms and
  // 0.8 MB, docs/benchmarks.md) and the HTTP stack belong to the detached flusher only. The
  // one exception is node:vm (0.1 ms), which compiles the SDK with its code cache once a
  // recording run has made one (test/codecache.test.mjs).
  const probe = `process.on("exit", () => process.stderr.write("\\nmodules=" + process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)).join(",") + "\\n"));`;
  const modules = (extra) => {
    const home = new Home();
    const run = () =>
      spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(probe)}`, nodecli, "-C", home.project, "build"], {
        cwd: home.project,
        env: home.env(extra),
        encoding: "utf8",
      });
    // The third run: the first also creates the identity file and starts the flusher, the
    // second fills the code cache.
    run();
    run();
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    return new Set(/modules=(.*)/.exec(r.stderr)[1].split(","));
  };
  const off = modules({ DO_NOT_TRACK: "1" });
  for (const [name, extra] of [["local", {}], ["on, endpoint set", { NODECLI_ENDPOINT: "http://127.0.0.1:9" }]]) {
    const extraModules = [...modules(extra)].filter((m) => !off.has(m) && m !== "vm");
    assert.deepEqual(extraModules, [], `${name}: loaded ${extraModules.join(", ")}`);
  }
});

test("a later run with telemetry on reads each file once, opens no /dev/urandom and makes no directory", () => {
  // Every file call of the example CLI's run, recorded by a preload that wraps node:fs.
  const probe = `const fs = require("node:fs"); const calls = [];
for (const f of ["openSync", "readFileSync", "writeFileSync", "mkdirSync", "readdirSync", "renameSync"]) {
  const orig = fs[f]; fs[f] = function (p, ...rest) { calls.push(f + " " + p); return orig.call(this, p, ...rest); };
}
// Reported after every exit listener has run: the SDK writes the outbox in its own.
const emit = process.emit;
process.emit = function (event, ...args) {
  const result = emit.call(this, event, ...args);
  if (event === "exit") process.stderr.write("\\ncalls=" + JSON.stringify(calls) + "\\n");
  return result;
};`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-probe-"));
  const preload = path.join(dir, "probe.cjs");
  fs.writeFileSync(preload, probe);
  const home = new Home();
  const run = () => {
    const r = spawnSync(process.execPath, ["-r", preload, nodecli, "-C", home.project, "build"], { cwd: home.project, env: home.env(), encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(/calls=(.*)/.exec(r.stderr)[1]).filter((c) => !c.includes("node_modules") && !c.includes(path.join("sdks", "node")));
  };
  const first = run();
  assert.ok(first.some((c) => c.includes("/dev/urandom")), "the first run draws the salt and install id from the OS");
  // The second run fills the code cache (test/codecache.test.mjs); the third is every later one.
  run();
  const second = run();
  fs.rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(second.filter((c) => c.includes("/dev/urandom")), [], "event ids and file names need no OS randomness");
  assert.deepEqual(second.filter((c) => c.startsWith("mkdirSync")), [], "the directories exist");
  const reads = second.filter((c) => c.startsWith("readFileSync")).map((c) => c.slice(13));
  assert.equal(reads.length, new Set(reads).size, `a file read twice: ${reads.join(", ")}`);
  assert.ok(reads.some((r) => r.endsWith("machine.cache")), "the machine hash is taken from the cache");
  assert.deepEqual(second.filter((c) => c.startsWith("writeFileSync")).length, 1, "one file written: the outbox's");
});
