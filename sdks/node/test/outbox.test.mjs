// The outbox: bounded, expiring, unique ids, posted marks with a doubling wait, damaged
// lines losing only themselves, exclusive claims, and three processes at once losing
// nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";

import { Outbox, isDue, DEFAULT_RESEND_AFTER_MS } from "../dist/cjs/outbox.js";
import { uuidV7 } from "../dist/cjs/event.js";
import { Home, root } from "./helpers.mjs";

const context = {
  app: "demo",
  app_version: "1.0.0",
  project: "7b581c0d-89b7-479e-b379-a76ab90b8754",
  machine: "m".repeat(64),
  env: "development",
  os: "linux",
  os_version: "6.8",
  arch: "x86_64",
  runtime: "node",
  runtime_version: "20.0.0",
  container: false,
};
const event = (at = Date.now()) => ({ event_id: uuidV7(at), event: "command.run", occurred_at: new Date(at).toISOString() });
const ids = (chunks) => chunks.flatMap((c) => c.events.map((e) => e.event_id));

function tmp(t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-outbox-"));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test("outbox: append, read, clear; an id written twice is kept once", (t) => {
  const o = new Outbox(tmp(t));
  assert.equal(o.len(), 0);
  assert.equal(fs.readdirSync(o.dir).length, 0, "nothing touched until used");
  const events = [event(), event(), event()];
  assert.equal(o.append(context, events), 3);
  assert.equal(o.append(context, events), 3);
  assert.equal(o.len(), 3);
  assert.deepEqual(ids(o.chunks()), ids([{ events }]));
  o.clear();
  assert.equal(o.len(), 0);
  assert.equal(o.hasWaiting(), false);
});

test("outbox: the bound keeps the newest events, in order", (t) => {
  const o = new Outbox(tmp(t), 8 * 1024);
  const all = [];
  for (let i = 0; i < 50; i++) {
    const batch = [event(), event(), event(), event(), event()];
    o.append(context, batch);
    all.push(...batch);
  }
  assert.ok(o.needsCompaction());
  o.compact();
  assert.ok(o.bytes() <= 8 * 1024, `${o.bytes()}`);
  assert.ok(o.bytes() > 7 * 1024, `as full as fits: ${o.bytes()}`);
  const kept = ids(o.chunks());
  assert.ok(kept.length > 0 && kept.length < all.length);
  assert.deepEqual(kept, all.slice(all.length - kept.length).map((e) => e.event_id), "the newest survive, in order");
  assert.equal(fs.readdirSync(o.dir).length, 1, "merged into one file");
});

test("outbox: events expire after 14 days", (t) => {
  const o = new Outbox(tmp(t));
  const now = Date.now();
  const day = 24 * 3600 * 1000;
  assert.equal(o.append(context, [event(now - 15 * day), event(now - 13 * day)], now), 1);
  assert.equal(o.len(), 1);
  o.append(context, [event(now)], now);
  const later = now + 14 * day - 3600 * 1000;
  assert.equal(ids(o.read(fs.readdirSync(o.dir), later)).length, 1);
});

test("outbox: a damaged line loses only itself", (t) => {
  const o = new Outbox(tmp(t));
  const first = event();
  o.append(context, [first]);
  const [file] = fs.readdirSync(o.dir);
  fs.appendFileSync(path.join(o.dir, file), '{"context":{"app":"de');
  fs.writeFileSync(path.join(o.dir, "outbox-0-1-x.jsonl"), "not json\n[1,2]\n");
  const second = event();
  o.append(context, [second]);
  assert.deepEqual(ids(o.chunks()), [first.event_id, second.event_id]);
});

test("outbox: the sent-log is bounded, newest kept", (t) => {
  const o = new Outbox(tmp(t), undefined, undefined, 16 * 1024);
  const events = Array.from({ length: 20 }, () => event());
  for (let i = 0; i < 20; i++) {
    o.logSent({ sent_at: new Date().toISOString(), context, events, accepted: 20, duplicate: 0, rejected: 0, dropped_props: 0 });
  }
  assert.ok(fs.statSync(path.join(o.dir, "sent.jsonl")).size <= 16 * 1024);
  assert.ok(o.sent().length > 0);
});

test("outbox: at exit one new file, nothing read or rewritten; marks double the wait", (t) => {
  const o = new Outbox(tmp(t), 64 * 1024);
  const events = [event(), event(), event()];
  o.append(context, events);
  const [old] = fs.readdirSync(o.dir);
  const before = fs.statSync(path.join(o.dir, old));
  const queued = [event()];
  const posted = [event()];
  o.leaveAtExit(context, queued, posted, [events[1].event_id], []);
  o.leaveAtExit(null, [], [], [events[1].event_id], []);
  const after = fs.statSync(path.join(o.dir, old));
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs, "the old file was not touched");
  assert.equal(fs.readdirSync(o.dir).length, 3);
  const chunks = o.chunks();
  const marked = chunks.filter((c) => c.posted_at && c.events.some((e) => e.event_id === events[1].event_id));
  assert.equal(marked.length, 1);
  assert.equal(marked[0].posts, 2);
  const at = Date.parse(marked[0].posted_at);
  assert.equal(isDue(marked[0], at + DEFAULT_RESEND_AFTER_MS, DEFAULT_RESEND_AFTER_MS), false);
  assert.equal(isDue(marked[0], at + 2 * DEFAULT_RESEND_AFTER_MS, DEFAULT_RESEND_AFTER_MS), true);
  const mine = chunks.find((c) => c.events[0].event_id === posted[0].event_id);
  assert.equal(mine.posts, 1);
  assert.equal(isDue(mine, Date.now(), DEFAULT_RESEND_AFTER_MS), false, "the posted one waits");
  assert.equal(isDue(chunks.find((c) => c.events[0].event_id === queued[0].event_id), Date.now(), DEFAULT_RESEND_AFTER_MS), true);
  assert.equal(o.len(), 5);
  o.compact();
  assert.equal(o.chunks().filter((c) => c.posts === 2).length, 1, "a rewrite keeps the marks");
});

test("outbox: a claim is exclusive; a dead process's claim is taken over; an exiting one hands it back", (t) => {
  const dir = tmp(t);
  const o = new Outbox(dir);
  o.append(context, [event()]);
  o.append(context, [event()]);
  // Another, live process claims both and keeps them while it runs.
  const script = `const {Outbox}=require(${JSON.stringify(path.join(root, "dist/cjs/outbox.js"))});
    const c=new Outbox(${JSON.stringify(dir)}).claim(); process.stdout.write(String(c.length)); setTimeout(()=>{}, 5000);`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((done) => {
    child.stdout.once("data", (n) => {
      assert.equal(String(n), "2");
      assert.deepEqual(o.claim(), [], "held by a live process");
      assert.equal(o.len(), 2, "still listed");
      child.kill("SIGKILL");
      child.on("exit", () => {
        const taken = o.claim();
        assert.equal(taken.length, 2, "a dead process's claim is taken over");
        o.leaveAtExit(null, [], [], [], taken);
        assert.equal(fs.readdirSync(dir).filter((n) => n.startsWith("outbox-")).length, 2, "handed back");
        assert.equal(o.len(), 2);
        done();
      });
    });
  });
});

/** A real HTTP collector stand-in that records every event id it receives, answering 503 to every `failEvery`-th post. */
async function countingServer(failEvery) {
  const received = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const body = [];
    req.on("data", (c) => body.push(c));
    req.on("end", () => {
      n++;
      if (failEvery && n % failEvery === 0) {
        res.writeHead(503, { "Retry-After": "0" }).end('{"error":"busy","message":"try later"}');
        return;
      }
      const batch = JSON.parse(gunzipSync(Buffer.concat(body)).toString());
      const fresh = batch.events.filter((e) => !received.includes(e.event_id)).length;
      received.push(...batch.events.map((e) => e.event_id));
      // Slow enough that the three processes' sends overlap.
      setTimeout(() => res.writeHead(200).end(JSON.stringify({ accepted: fresh, duplicate: batch.events.length - fresh, rejected: 0, results: [] })), 20);
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { received, url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((ok) => server.close(ok)) };
}

test("outbox: three processes at once, with an outbox of earlier runs and failing posts, lose nothing", async (t) => {
  const home = new Home();
  t.after(() => home.remove());
  // Earlier runs left 10 files against a refused port.
  const refused = spawnSync(process.execPath, ["-e", "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: "utf8" }).stdout.trim();
  for (let i = 0; i < 10; i++) home.run(["build", "--events", "3"], { NODECLI_ENDPOINT: `http://127.0.0.1:${refused}` });
  const outbox = new Outbox(home.dataDir);
  const earlier = ids(outbox.chunks());
  assert.equal(earlier.length, 50);
  const server = await countingServer(4);
  t.after(() => server.close());
  const env = { NODECLI_ENDPOINT: server.url, NODECLI_RESEND_AFTER_MS: "0" };
  const runs = await Promise.all([0, 1, 2].map(() => home.start(["build", "--events", "150", "--flush-ms", "3000"], env)));
  for (const r of runs) assert.equal(r.status, 0, r.stderr);
  // Whatever the failures left in the outbox, later runs deliver.
  for (let i = 0; i < 10 && outbox.len() > 0; i++) await home.start(["build", "--flush-ms", "3000"], env);
  assert.equal(outbox.len(), 0, "all delivered");
  const got = new Set(server.received);
  for (const id of earlier) assert.ok(got.has(id), `earlier event ${id} lost`);
  const sentIds = outbox.sent().flatMap((r) => r.events.map((e) => e.event_id));
  const own = runs.length * 152;
  assert.ok(new Set(sentIds).size >= earlier.length + own, `${new Set(sentIds).size} delivered`);
  for (const id of sentIds) assert.ok(got.has(id));
});

test("outbox: a host that exits mid-send hands back only what the collector has not answered", async (t) => {
  const home = new Home();
  t.after(() => home.remove());
  const refused = spawnSync(process.execPath, ["-e", "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: "utf8" }).stdout.trim();
  for (let i = 0; i < 3; i++) home.run(["build", "--events", "198"], { NODECLI_ENDPOINT: `http://127.0.0.1:${refused}` });
  const outbox = new Outbox(home.dataDir);
  assert.equal(outbox.len(), 600);
  // The first post is answered, the second never is.
  const held = [];
  let answered = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (answered++ === 0) res.writeHead(200).end(JSON.stringify({ accepted: 500, duplicate: 0, rejected: 0, results: [] }));
      else held.push(res);
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  t.after(() => {
    for (const r of held) r.destroy();
    server.close();
  });
  const r = await home.start(["build", "--work-ms", "1500"], { NODECLI_ENDPOINT: `http://127.0.0.1:${server.address().port}` });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(held.length, 1, "the second post was in flight at exit");
  assert.equal(outbox.sent().reduce((n, s) => n + s.events.length, 0), 500);
  const chunks = outbox.chunks();
  const old = chunks.filter((c) => c.posts === 1).reduce((n, c) => n + c.events.length, 0);
  assert.equal(old, 100, "only the unanswered 100 come back, marked posted");
  assert.equal(outbox.len(), 102, "with the run's own two");
  assert.equal(fs.readdirSync(home.dataDir).filter((n) => n.startsWith("claimed-")).length, 0, "no claim left behind");
});
