/**
 * Delivery of one batch: gzip JSON over HTTP(S) with Node's own `http`/`https`, through
 * `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and `NO_PROXY`) when set; or (tests) an in-memory
 * sink. Sockets and timers are unref'd: an unanswered request never keeps the host's event
 * loop alive, and the exit handler files what it carried in the outbox.
 *
 * `node:http`, `node:https`, `node:tls` and `node:zlib` are loaded on the first send, not
 * when the SDK is imported: loading them costs a tool 10-40 ms of start-up, which a run
 * that is off, local, or shorter than one flush interval would pay for nothing.
 */

/** The modules one send needs, loaded once. */
interface Modules {
  http: typeof import("node:http");
  https: typeof import("node:https") | null;
  tls: typeof import("node:tls") | null;
  zlib: typeof import("node:zlib");
}

import type * as http from "node:http";
import type * as net from "node:net";

import { BATCH_PATH, Batch, BatchResponse } from "./protocol.js";
import type { Vars } from "./vars.js";

/** What happened to a batch. */
export type Delivery =
  /** The collector answered for every event (stored, duplicate or refused for good). */
  | { kind: "delivered"; accepted: number; duplicate: number; rejected: number; dropped_props: number }
  /** Try again later; the collector may have said when (ms). */
  | { kind: "retry"; afterMs?: number }
  /** Refused for good (a 4xx other than 408 and 429): retrying the same bytes cannot succeed. */
  | { kind: "refused" };

export interface Transport {
  send(batch: Batch): Promise<Delivery>;
}

export interface Timeouts {
  connectMs: number;
  totalMs: number;
}

/** `https://t.example.com` -> `https://t.example.com/v1/batch`; a URL already ending in it is kept. */
export function batchUrl(endpoint: string): string {
  const e = endpoint.trim().replace(/\/+$/, "");
  return e.endsWith(BATCH_PATH) ? e : `${e}${BATCH_PATH}`;
}

/** The proxy for `url` from the environment, or `null` (also when `NO_PROXY` matches). */
export function proxyFor(url: URL, vars: Vars): URL | null {
  const get = (n: string) => vars[n] ?? vars[n.toLowerCase()];
  const noProxy = (get("NO_PROXY") ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (noProxy.some((p) => p === "*" || host === p.replace(/^\./, "") || host.endsWith(p.startsWith(".") ? p : `.${p}`))) {
    return null;
  }
  const raw = url.protocol === "https:" ? (get("HTTPS_PROXY") ?? get("ALL_PROXY")) : (get("HTTP_PROXY") ?? get("ALL_PROXY"));
  if (!raw) return null;
  try {
    return new URL(raw.includes("://") ? raw : `http://${raw}`);
  } catch {
    return null;
  }
}

/** The HTTP transport of one endpoint. */
export class HttpTransport implements Transport {
  private readonly url: URL;
  private readonly proxy: URL | null;
  private modules: Promise<Modules> | null = null;
  private agent: http.Agent | null = null;

  constructor(
    endpoint: string,
    private readonly userAgent: string,
    private readonly timeouts: Timeouts,
    vars: Vars,
  ) {
    this.url = new URL(batchUrl(endpoint));
    this.proxy = proxyFor(this.url, vars);
  }

  private load(): Promise<Modules> {
    if (!this.modules) {
      const secure = this.url.protocol === "https:";
      this.modules = Promise.all([
        import("node:http"),
        secure ? import("node:https") : null,
        secure ? import("node:tls") : null,
        import("node:zlib"),
      ]).then(([http, https, tls, zlib]) => ({ http, https, tls, zlib }));
    }
    return this.modules;
  }

  async send(batch: Batch): Promise<Delivery> {
    let m: Modules;
    try {
      m = await this.load();
    } catch {
      return { kind: "retry" };
    }
    const { http } = m;
    const https = m.https as typeof import("node:https");
    const tls = m.tls as typeof import("node:tls");
    // Its own agent: the host's global agent and its sockets are left alone.
    this.agent ??= new (https ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
    let body: Buffer;
    try {
      body = m.zlib.gzipSync(JSON.stringify(batch), { level: 1 });
    } catch {
      return { kind: "refused" };
    }
    return new Promise((resolve) => {
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const done = (d: Delivery) => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        resolve(d);
      };
      const timer = (ms: number, f: () => void) => {
        const t = setTimeout(f, ms);
        t.unref();
        timers.push(t);
      };
      const requests: http.ClientRequest[] = [];
      const fail = () => {
        for (const r of requests) r.destroy();
        done({ kind: "retry" });
      };
      timer(this.timeouts.totalMs, fail);
      const headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": String(body.length),
        "User-Agent": this.userAgent,
      };
      const onResponse = (res: http.IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= 1024 * 1024) chunks.push(c);
        });
        res.on("error", fail);
        res.on("end", () => {
          if ((status >= 200 && status < 300) || status === 422) {
            let parsed: BatchResponse | null = null;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as BatchResponse;
            } catch {
              parsed = null;
            }
            done({
              kind: "delivered",
              accepted: parsed?.accepted ?? batch.events.length,
              duplicate: parsed?.duplicate ?? 0,
              rejected: parsed?.rejected ?? 0,
              dropped_props: parsed?.dropped_props ?? 0,
            });
          } else if (status === 408 || status === 429 || status >= 500) {
            const after = Number(String(res.headers["retry-after"] ?? "").trim());
            done({ kind: "retry", afterMs: Number.isInteger(after) && after >= 0 ? after * 1000 : undefined });
          } else {
            done({ kind: "refused" });
          }
        });
      };
      const watch = (socket: net.Socket) => {
        socket.unref();
        if (socket.connecting) {
          timer(this.timeouts.connectMs, () => {
            if (socket.connecting) fail();
          });
        }
      };
      const options: http.RequestOptions = { method: "POST", headers, agent: this.agent ?? undefined };
      const start = (req: http.ClientRequest) => {
        requests.push(req);
        req.on("socket", watch);
        req.on("error", fail);
        return req;
      };
      try {
        if (this.proxy && this.url.protocol === "https:") {
          this.tunnel(http, this.proxy, start, (socket) => {
            const tlsOptions = { socket, servername: this.url.hostname };
            const req = https.request(this.url, { ...options, agent: false, createConnection: () => tls.connect(tlsOptions) }, onResponse);
            start(req).end(body);
          });
        } else if (this.proxy) {
          // A plain HTTP endpoint through a proxy: the absolute URL as the request target.
          const target = { ...options, agent: false, host: this.proxy.hostname, port: this.proxy.port || 80, path: this.url.href };
          start(http.request(target, onResponse)).end(body);
        } else {
          const request = this.url.protocol === "https:" ? https.request : http.request;
          start(request(this.url, options, onResponse)).end(body);
        }
      } catch {
        fail();
      }
    });
  }

  /** `CONNECT` through the proxy; `then` gets the tunnel's socket. */
  private tunnel(http: typeof import("node:http"), proxy: URL, start: (r: http.ClientRequest) => http.ClientRequest, then: (s: net.Socket) => void): void {
    const target = `${this.url.hostname}:${this.url.port || 443}`;
    const connect = start(
      http.request({ host: proxy.hostname, port: proxy.port || 80, method: "CONNECT", path: target, headers: { Host: target }, agent: false }),
    );
    connect.on("connect", (res, socket) => {
      socket.unref();
      if (res.statusCode !== 200) {
        socket.destroy();
        connect.emit("error", new Error(`proxy answered ${res.statusCode}`));
        return;
      }
      then(socket);
    });
    connect.end();
  }
}
