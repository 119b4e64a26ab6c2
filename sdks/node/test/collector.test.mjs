// Against a real `tally serve` on loopback (TALLY_BIN): events arrive once; a refused port
// and a port that accepts and never answers leave the host's exit unheld and the events
// in the outbox, delivered by a later run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as net from "node:net";

import { Outbox } from "../dist/cjs/outbox.js";
import { Collector, Home, sentLog } from "./helpers.mjs";

let collector;
before(async () => {
  collector = await Collector.start();
});
after(async () => {
  await collector?.stop();
});

const outboxIds = (home) => new Outbox(home.dataDir).chunks().flatMap((c) => c.events.map((e) => e.event_id));
const sentIds = (home) => sentLog(home.dataDir).flatMap((r) => r.events.map((e) => e.event_id));

/** Every sent batch was stored by the collector: accepted, never a duplicate or a rejection. */
function assertStoredOnce(home) {
  const log = sentLog(home.dataDir);
  assert.ok(log.length > 0, "something was sent");
  for (const r of log) {
    assert.deepEqual([r.accepted, r.duplicate, r.rejected], [r.events.length, 0, 0], JSON.stringify(r).slice(0, 300));
  }
  const ids = sentIds(home);
  assert.equal(new Set(ids).size, ids.length, "no event sent twice");
}

/** A later run against the collector: delivers what waits, and its own. */
function laterRun(home) {
  const r = home.run(["build", "--flush-ms", "10000"], { NODECLI_ENDPOINT: collector.url, NODECLI_RESEND_AFTER_MS: "0" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(outboxIds(home), [], "the outbox is empty");
}

function refusedPort() {
  const out = spawnSync(process.execPath, ["-e", "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: "utf8" });
  return `http://127.0.0.1:${out.stdout.trim()}`;
}

test("collector: events arrive once, and a later run sends only its own", () => {
  const home = new Home();
  try {
    const r = home.run(["build", "--events", "3", "--flush-ms", "10000"], { NODECLI_ENDPOINT: collector.url });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sentIds(home).length, 5);
    assert.deepEqual(outboxIds(home), []);
    laterRun(home);
    assert.equal(sentIds(home).length, 7);
    assertStoredOnce(home);
  } finally {
    home.remove();
  }
});

test("collector: a refused port keeps the events in the outbox; a later run delivers them once", () => {
  const home = new Home();
  try {
    // 120 events fill a batch, so it is posted during the run (and refused).
    const r = home.run(["build", "--events", "120"], { NODECLI_ENDPOINT: refusedPort() });
    assert.equal(r.status, 0, r.stderr);
    const waiting = outboxIds(home);
    assert.equal(waiting.length, 122, "every event kept");
    laterRun(home);
    const sent = new Set(sentIds(home));
    for (const id of waiting) assert.ok(sent.has(id), `${id} not delivered`);
    assertStoredOnce(home);
  } finally {
    home.remove();
  }
});

test("collector: a port that never answers does not hold the host; the events wait and are delivered later", async () => {
  const home = new Home();
  const held = [];
  const silent = net.createServer((s) => held.push(s));
  await new Promise((ok) => silent.listen(0, "127.0.0.1", ok));
  try {
    const endpoint = `http://127.0.0.1:${silent.address().port}`;
    const r = await home.start(["build", "--events", "120"], { NODECLI_ENDPOINT: endpoint });
    assert.equal(r.status, 0, r.stderr);
    // The host exited while its post was still open: the request's 10 s timeout did not hold it.
    assert.ok(held.length >= 1, "a post was in flight");
    assert.ok(held.every((s) => !s.destroyed), "and still unanswered when the host had exited");
    const chunks = new Outbox(home.dataDir).chunks();
    assert.equal(chunks.reduce((n, c) => n + c.events.length, 0), 122, "every event kept");
    assert.ok(chunks.some((c) => c.posts === 1 && c.posted_at), "the batch in flight is marked posted");
    const waiting = outboxIds(home);
    laterRun(home);
    const sent = new Set(sentIds(home));
    for (const id of waiting) assert.ok(sent.has(id), `${id} not delivered`);
    assertStoredOnce(home);
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    home.remove();
  }
});

test("collector: a short command with a posted, unanswered batch does not post it again before resendAfter", async () => {
  const home = new Home();
  const held = [];
  const silent = net.createServer((s) => held.push(s));
  await new Promise((ok) => silent.listen(0, "127.0.0.1", ok));
  try {
    const endpoint = `http://127.0.0.1:${silent.address().port}`;
    await home.start(["build", "--events", "120"], { NODECLI_ENDPOINT: endpoint });
    // Five more short runs: each posts what the run before left unposted, never what was posted.
    for (let i = 0; i < 5; i++) await home.start(["build"], { NODECLI_ENDPOINT: endpoint });
    const chunks = new Outbox(home.dataDir).chunks();
    assert.equal(chunks.reduce((n, c) => n + c.events.length, 0), 122 + 10);
    for (const c of chunks) assert.ok((c.posts ?? 0) <= 1, `posted ${c.posts} times: ${c.events.length} events`);
    assert.ok(chunks.some((c) => c.posts === 1 && c.events.length >= 100), "the first run's batch waits");
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    home.remove();
  }
});
