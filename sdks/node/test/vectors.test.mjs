// The protocol's test vectors (crates/tally-protocol/vectors): every batch round-trips
// through the SDK's wire types unchanged, the client-side checks accept what the
// collector accepts, and refuse (with the same reason) what a client can see is invalid.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { checkBatch, checkEvent } from "../dist/cjs/protocol.js";
import { Outbox } from "../dist/cjs/outbox.js";
import { repo } from "./helpers.mjs";

const dir = path.join(repo, "crates", "tally-protocol", "vectors");
const load = (kind) =>
  fs
    .readdirSync(path.join(dir, kind))
    .filter((f) => f.endsWith(".json"))
    .map((f) => [f, JSON.parse(fs.readFileSync(path.join(dir, kind, f), "utf8"))]);

/** Reasons that need the app's schema, the collector's clock or the whole body: the collector's alone. */
const SERVER_ONLY = new Set(["unknown_event", "unknown_app", "too_old", "in_future", "invalid_property", "malformed_body"]);

test("vectors: valid batches are accepted by the client checks and round-trip", () => {
  const valid = load("valid");
  assert.ok(valid.length >= 5);
  for (const [name, v] of valid) {
    assert.equal(checkBatch(v.batch), null, name);
    v.batch.events.forEach((e, i) => {
      if (v.expect[i] === "accepted" || v.expect[i].startsWith("duplicate")) assert.equal(checkEvent(e), null, `${name} #${i}`);
    });
    assert.deepEqual(JSON.parse(JSON.stringify(v.batch)), v.batch, name);
  }
});

test("vectors: the outbox keeps a vector's batch byte for byte", (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-vectors-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  for (const [name, v] of load("valid")) {
    const o = new Outbox(path.join(tmp, name));
    o.append(v.batch.context, v.batch.events, Date.parse(v.now));
    const back = o.read(fs.readdirSync(o.dir), Date.parse(v.now));
    // Duplicates within a batch are kept once, as the collector counts them.
    const unique = [...new Map(v.batch.events.map((e) => [e.event_id, e])).values()];
    assert.deepEqual(back.flatMap((c) => c.events), unique, name);
    assert.deepEqual(back[0].context, v.batch.context, name);
  }
});

test("vectors: invalid events the client can see are refused with the collector's reason", () => {
  let checked = 0;
  for (const [name, v] of load("invalid")) {
    if (v.batch_error && !SERVER_ONLY.has(v.batch_error)) {
      assert.equal(checkBatch(v.batch), v.batch_error, name);
      checked++;
      continue;
    }
    if (v.batch_error) continue;
    assert.equal(checkBatch(v.batch), null, name);
    const expect = v.expect;
    v.batch.events.forEach((e, i) => {
      const want = expect[i];
      if (!want.startsWith("rejected:")) return;
      const reason = want.slice("rejected:".length);
      if (SERVER_ONLY.has(reason)) return;
      assert.equal(checkEvent(e), reason, `${name} #${i}`);
      checked++;
    });
  }
  assert.ok(checked >= 8, `${checked} checked`);
});
