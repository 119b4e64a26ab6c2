// Against a real `tally serve` on loopback (TALLY_BIN): events arrive once, sent by the
// host (flush()) or by the detached flusher a short command hands them to at exit; a
// refused port and a port that accepts and never answers leave the host's exit unheld and
// the events in the outbox, delivered by a later run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as net from "node:net";

import { Outbox } from "../dist/cjs/outbox.js";
import * as fs from "node:fs";
import * as path from "node:path";

import { Collector, flusherDone, Home, sentLog } from "./helpers.mjs";

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

// A flusher every run (the default is one per 60 s), so that each run's flusher can be waited for.
const GAP0 = { NODECLI_FLUSH_GAP_MS: "0" };
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const backoffOf = (home) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(home.dataDir, "flush-backoff.json"), "utf8"));
  } catch {
    return null;
  }
};

/** A later short run against the collector, once the backoff has passed: its flusher delivers what waits, and its own. */
async function laterRun(home) {
  const b = backoffOf(home);
  if (b) await sleep(Math.max(0, b.until - Date.now() + 50));
  const r = home.run(["build"], { ...GAP0, NODECLI_ENDPOINT: collector.url, NODECLI_RESEND_AFTER_MS: "0" });
  assert.equal(r.status, 0, r.stderr);
  await flusherDone(home.dataDir);
  assert.deepEqual(outboxIds(home), [], "the outbox is empty");
  assert.equal(backoffOf(home), null, "a delivered flush clears the backoff");
}

function refusedPort() {
  const out = spawnSync(process.execPath, ["-e", "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: "utf8" });
  return `http://127.0.0.1:${out.stdout.trim()}`;
}

test("collector: events arrive once, and a later run sends only its own", async () => {
  const home = new Home();
  try {
    const r = home.run(["build", "--events", "3", "--flush-ms", "10000"], { ...GAP0, NODECLI_ENDPOINT: collector.url });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sentIds(home).length, 5);
    assert.deepEqual(outboxIds(home), []);
    await flusherDone(home.dataDir);
    await laterRun(home);
    assert.equal(sentIds(home).length, 7);
    assertStoredOnce(home);
  } finally {
    home.remove();
  }
});

test("collector: a short command hands its events to a detached flusher, which delivers them exactly once", async () => {
  const home = new Home();
  // Reports, after every exit listener, whether the host loaded Node's HTTP stack.
  const probe = path.join(home.dir, "probe.cjs");
  fs.writeFileSync(
    probe,
    `const emit = process.emit;
process.emit = function (e, ...a) {
  const r = emit.call(this, e, ...a);
  if (e === "exit") process.stderr.write("http_loaded=" + process.moduleLoadList.some((m) => /^NativeModule (http|https|zlib)$/.test(m)) + "\\n");
  return r;
};
`,
  );
  try {
    for (let run = 1; run <= 3; run++) {
      const r = home.run(["build", "--events", "3"], { ...GAP0, NODECLI_ENDPOINT: collector.url, NODE_OPTIONS: `--require ${probe}` });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /http_loaded=false/, "the host never loads http, https or zlib");
      await flusherDone(home.dataDir);
      assert.equal(sentIds(home).length, 5 * run, `run ${run}: every event of the run delivered by its flusher`);
      assert.deepEqual(outboxIds(home), []);
    }
    assertStoredOnce(home);
    assert.deepEqual(fs.readdirSync(home.dataDir).sort(), ["flush-started", "sent.jsonl"], "no lock, claim or outbox file left");
    // The same command that waits for delivery itself does load them (the probe sees them).
    const r = home.run(["build", "--flush-ms", "10000"], { NODECLI_ENDPOINT: collector.url, NODE_OPTIONS: `--require ${probe}` });
    assert.match(r.stderr, /http_loaded=true/);
  } finally {
    home.remove();
  }
});

test("collector: within the flush gap a run starts no flusher; its events wait and the first run after the gap delivers them once", async () => {
  const home = new Home();
  try {
    const env = { NODECLI_ENDPOINT: collector.url, NODECLI_FLUSH_GAP_MS: "1500" };
    assert.equal(home.run(["build"], env).status, 0);
    await flusherDone(home.dataDir);
    assert.equal(sentIds(home).length, 2, "the first run starts a flusher");
    const started = Date.now();
    assert.equal(home.run(["build"], env).status, 0);
    await flusherDone(home.dataDir);
    if (Date.now() - started < 1000) {
      assert.equal(sentIds(home).length, 2, "no flusher within the gap");
      assert.equal(outboxIds(home).length, 2, "the run's events wait in the outbox");
    }
    await sleep(Math.max(0, started + 1600 - Date.now()));
    assert.equal(home.run(["build"], env).status, 0);
    await flusherDone(home.dataDir);
    assert.equal(sentIds(home).length, 6);
    assert.deepEqual(outboxIds(home), []);
    assertStoredOnce(home);
  } finally {
    home.remove();
  }
});

test("collector: a refused port keeps the events in the outbox, backs off, and a later run delivers them once", async () => {
  const home = new Home();
  try {
    const endpoint = refusedPort();
    const r = home.run(["build", "--events", "120"], { ...GAP0, NODECLI_ENDPOINT: endpoint });
    assert.equal(r.status, 0, r.stderr);
    await flusherDone(home.dataDir);
    const waiting = outboxIds(home);
    assert.equal(waiting.length, 122, "every event kept");
    const b = backoffOf(home);
    assert.equal(b?.failures, 1, "the failed flush left a backoff");
    // Within the backoff a run starts no flusher: the failure count stays.
    if (Date.now() < b.until - 200) {
      home.run(["build"], { ...GAP0, NODECLI_ENDPOINT: endpoint });
      await flusherDone(home.dataDir);
      assert.equal(backoffOf(home)?.failures, 1);
    }
    await laterRun(home);
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
    const r = await home.start(["build", "--events", "120"], { ...GAP0, NODECLI_ENDPOINT: endpoint });
    assert.equal(r.status, 0, r.stderr);
    // The host has exited; its flusher's post reaches the silent server and stays unanswered.
    const deadline = Date.now() + 20000;
    while (held.length === 0 && Date.now() < deadline) await sleep(20);
    assert.ok(held.length >= 1, "the flusher posted");
    assert.equal(new Outbox(home.dataDir).chunks().reduce((n, c) => n + c.events.length, 0), 122, "every event kept meanwhile");
    for (const s of held) s.destroy();
    await flusherDone(home.dataDir);
    const waiting = outboxIds(home);
    assert.equal(waiting.length, 122, "a post that failed keeps its events");
    await laterRun(home);
    const sent = new Set(sentIds(home));
    for (const id of waiting) assert.ok(sent.has(id), `${id} not delivered`);
    assertStoredOnce(home);
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    home.remove();
  }
});

test("collector: a batch in flight at a long run's exit is marked posted, and not posted again before resendAfter", async () => {
  const home = new Home();
  const held = [];
  const silent = net.createServer((s) => held.push(s));
  await new Promise((ok) => silent.listen(0, "127.0.0.1", ok));
  try {
    const endpoint = `http://127.0.0.1:${silent.address().port}`;
    // Longer than one flush interval: the full batch is posted by the host itself.
    await home.start(["build", "--events", "120", "--work-ms", "1500"], { ...GAP0, NODECLI_ENDPOINT: endpoint });
    assert.ok(held.length >= 1, "the host posted");
    // Five more short runs: their flushers post what is due, never the batch posted unanswered.
    for (let i = 0; i < 5; i++) {
      await home.start(["build"], { ...GAP0, NODECLI_ENDPOINT: endpoint });
      for (const s of held) s.destroy();
      await flusherDone(home.dataDir);
      const b = backoffOf(home);
      if (b) await sleep(Math.max(0, b.until - Date.now() + 20));
    }
    const chunks = new Outbox(home.dataDir).chunks();
    assert.equal(chunks.reduce((n, c) => n + c.events.length, 0), 122 + 10);
    for (const c of chunks) assert.ok((c.posts ?? 0) <= 1, `posted ${c.posts} times: ${c.events.length} events`);
    assert.ok(chunks.some((c) => c.posts === 1 && c.events.length >= 100), "the first run's batch waits");
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    await flusherDone(home.dataDir);
    home.remove();
  }
});
