// The HTTP transport on real loopback sockets: gzip JSON, status codes (retry or drop),
// Retry-After, the total timeout, and HTTP_PROXY.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { gunzipSync } from "node:zlib";

import { createTelemetry, Event } from "../dist/index.mjs";
import { Sandbox } from "../dist/testing.mjs";
import { backoff } from "../dist/cjs/client.js";
import { batchUrl, proxyFor } from "../dist/cjs/transport.js";

/** A loopback server answering every request with `status`, recording what it got. */
async function server(status, headers = {}) {
  const requests = [];
  const s = http.createServer((req, res) => {
    const body = [];
    req.on("data", (c) => body.push(c));
    req.on("end", () => {
      requests.push({ url: req.url, headers: req.headers, body: Buffer.concat(body) });
      const n = requests.length;
      const answer = status === 200 ? JSON.stringify({ accepted: n, duplicate: 0, rejected: 0, results: [] }) : '{"error":"x","message":"y"}';
      res.writeHead(status, headers).end(answer);
    });
  });
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  return { requests, url: `http://127.0.0.1:${s.address().port}`, close: () => new Promise((ok) => s.close(ok)) };
}

function sandboxed(t) {
  const s = new Sandbox();
  t.after(() => s.remove());
  return s;
}

test("transport: gzip JSON with the SDK's user agent, to /v1/batch", async (t) => {
  const s = sandboxed(t);
  const srv = await server(200);
  t.after(() => srv.close());
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint: `${srv.url}/` });
  tel.record(Event.commandRun("build"));
  assert.equal(await tel.flush(5000), true);
  assert.equal(srv.requests.length, 1);
  const r = srv.requests[0];
  assert.equal(r.url, "/v1/batch");
  assert.equal(r.headers["content-encoding"], "gzip");
  assert.equal(r.headers["content-type"], "application/json");
  assert.match(r.headers["user-agent"], /^tally-node\/\S+ demo\/1\.0\.0$/);
  const batch = JSON.parse(gunzipSync(r.body).toString());
  assert.equal(batch.events[0].event, "command.run");
  assert.equal(tel.outbox().sent().length, 1);
  assert.equal(batchUrl("https://t.example.com/v1/batch"), "https://t.example.com/v1/batch");
});

test("transport: retryable statuses keep the events, client errors drop them", async (t) => {
  for (const [status, kept] of [[429, true], [503, true], [500, true], [408, true], [400, false], [413, false]]) {
    const s = sandboxed(t);
    const srv = await server(status);
    const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint: srv.url });
    tel.record(Event.commandRun("build"));
    await tel.flush(5000);
    await srv.close();
    assert.equal(srv.requests.length, 1, `${status}: one request`);
    assert.equal(tel.outbox().len() > 0, kept, `status ${status}`);
    assert.equal(tel.outbox().sent().length, 0, `status ${status}`);
  }
});

test("transport: Retry-After is honoured (and capped), backoff doubles", async (t) => {
  assert.equal(backoff(1), 500);
  assert.equal(backoff(2), 1000);
  assert.equal(backoff(40), 300_000);
  assert.equal(backoff(1, 30_000), 30_000);
  assert.equal(backoff(1, 2 ** 40), 3_600_000);
  const s = sandboxed(t);
  const srv = await server(503, { "Retry-After": "3600" });
  t.after(() => srv.close());
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint: srv.url, flushIntervalMs: 1 });
  tel.record(Event.commandRun("build"));
  await tel.flush(5000);
  // More events within the hour go to the outbox without a request.
  for (let i = 0; i < 3; i++) {
    tel.record(Event.commandRun("build"));
    await tel.flush(5000);
  }
  assert.equal(srv.requests.length, 1, "no request before Retry-After");
  assert.equal(tel.outbox().len(), 4);
});

test("transport: a request that never answers times out and its events wait in the outbox", async (t) => {
  const s = sandboxed(t);
  const held = [];
  const silent = net.createServer((c) => held.push(c));
  await new Promise((ok) => silent.listen(0, "127.0.0.1", ok));
  t.after(() => {
    for (const c of held) c.destroy();
    silent.close();
  });
  const tel = createTelemetry({ ...s.options("demo", "1.0.0"), endpoint: `http://127.0.0.1:${silent.address().port}`, totalTimeoutMs: 300 });
  tel.record(Event.commandRun("build"));
  assert.equal(await tel.flush(10_000), true, "settled by the timeout");
  assert.equal(held.length, 1);
  assert.equal(tel.outbox().len(), 1);
  assert.equal(tel.outbox().chunks()[0].posts ?? 0, 0, "answered by the timeout: not marked posted");
});

test("transport: HTTP_PROXY carries the request (absolute form); NO_PROXY bypasses it", async (t) => {
  const s = sandboxed(t);
  const proxy = await server(200);
  t.after(() => proxy.close());
  const target = "http://collector.invalid:7070";
  const tel = createTelemetry({ ...s.options("demo", "1.0.0", { HTTP_PROXY: proxy.url }), endpoint: target });
  tel.record(Event.commandRun("build"));
  assert.equal(await tel.flush(5000), true);
  assert.equal(proxy.requests.length, 1);
  assert.equal(proxy.requests[0].url, `${target}/v1/batch`);
  assert.equal(tel.outbox().len(), 0);
  const url = new URL("https://t.example.com/v1/batch");
  assert.equal(proxyFor(url, { HTTPS_PROXY: "http://p:3128" }).host, "p:3128");
  assert.equal(proxyFor(url, { https_proxy: "p:3128" }).host, "p:3128");
  assert.equal(proxyFor(url, { HTTPS_PROXY: "http://p:3128", NO_PROXY: "example.com" }), null);
  assert.equal(proxyFor(url, { HTTPS_PROXY: "http://p:3128", NO_PROXY: "*" }), null);
  assert.equal(proxyFor(url, { HTTP_PROXY: "http://p:3128" }), null, "an https endpoint uses HTTPS_PROXY");
});

test("transport: HTTPS_PROXY opens a CONNECT tunnel to the collector", async (t) => {
  const s = sandboxed(t);
  const tunnels = [];
  const proxy = http.createServer();
  proxy.on("connect", (req, socket) => {
    tunnels.push(req.url);
    // Refuse the tunnel: the batch must then wait in the outbox.
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
  t.after(() => new Promise((ok) => proxy.close(ok)));
  const vars = { HTTPS_PROXY: `http://127.0.0.1:${proxy.address().port}` };
  const tel = createTelemetry({ ...s.options("demo", "1.0.0", vars), endpoint: "https://collector.invalid" });
  tel.record(Event.commandRun("build"));
  assert.equal(await tel.flush(5000), true);
  assert.deepEqual(tunnels, ["collector.invalid:443"]);
  assert.equal(tel.outbox().len(), 1, "kept for a later run");
});
