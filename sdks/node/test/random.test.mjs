// The SDK's own SHA-256, HMAC and random bytes (written so that a run never loads
// node:crypto) against node:crypto itself, and the example CLI's built-in modules.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { spawnSync } from "node:child_process";

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
  // 0.8 MB, docs/benchmarks.md) and the HTTP stack belong to the detached flusher only.
  const probe = `process.on("exit", () => process.stderr.write("\\nmodules=" + process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)).join(",") + "\\n"));`;
  const modules = (extra) => {
    const home = new Home();
    const run = () =>
      spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(probe)}`, nodecli, "-C", home.project, "build"], {
        cwd: home.project,
        env: home.env(extra),
        encoding: "utf8",
      });
    // The second run: the first also creates the identity file and starts the flusher.
    run();
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    return new Set(/modules=(.*)/.exec(r.stderr)[1].split(","));
  };
  const off = modules({ DO_NOT_TRACK: "1" });
  for (const [name, extra] of [["local", {}], ["on, endpoint set", { NODECLI_ENDPOINT: "http://127.0.0.1:9" }]]) {
    const extraModules = [...modules(extra)].filter((m) => !off.has(m));
    assert.deepEqual(extraModules, [], `${name}: loaded ${extraModules.join(", ")}`);
  }
});
