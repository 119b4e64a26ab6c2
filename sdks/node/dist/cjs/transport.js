"use strict";
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
Object.defineProperty(exports, "__esModule", { value: true });
exports.HttpTransport = void 0;
exports.batchUrl = batchUrl;
exports.proxyFor = proxyFor;
const protocol_js_1 = require("./protocol.js");
/** `https://t.example.com` -> `https://t.example.com/v1/batch`; a URL already ending in it is kept. */
function batchUrl(endpoint) {
    const e = endpoint.trim().replace(/\/+$/, "");
    return e.endsWith(protocol_js_1.BATCH_PATH) ? e : `${e}${protocol_js_1.BATCH_PATH}`;
}
/** The proxy for `url` from the environment, or `null` (also when `NO_PROXY` matches). */
function proxyFor(url, vars) {
    const get = (n) => vars[n] ?? vars[n.toLowerCase()];
    const noProxy = (get("NO_PROXY") ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
    if (noProxy.some((p) => p === "*" || host === p.replace(/^\./, "") || host.endsWith(p.startsWith(".") ? p : `.${p}`))) {
        return null;
    }
    const raw = url.protocol === "https:" ? (get("HTTPS_PROXY") ?? get("ALL_PROXY")) : (get("HTTP_PROXY") ?? get("ALL_PROXY"));
    if (!raw)
        return null;
    try {
        return new URL(raw.includes("://") ? raw : `http://${raw}`);
    }
    catch {
        return null;
    }
}
/** The HTTP transport of one endpoint. */
class HttpTransport {
    userAgent;
    timeouts;
    url;
    proxy;
    modules = null;
    agent = null;
    constructor(endpoint, userAgent, timeouts, vars) {
        this.userAgent = userAgent;
        this.timeouts = timeouts;
        this.url = new URL(batchUrl(endpoint));
        this.proxy = proxyFor(this.url, vars);
    }
    load() {
        if (!this.modules) {
            const secure = this.url.protocol === "https:";
            this.modules = Promise.all([
                Promise.resolve().then(() => require("node:http")),
                secure ? Promise.resolve().then(() => require("node:https")) : null,
                secure ? Promise.resolve().then(() => require("node:tls")) : null,
                Promise.resolve().then(() => require("node:zlib")),
            ]).then(([http, https, tls, zlib]) => ({ http, https, tls, zlib }));
        }
        return this.modules;
    }
    async send(batch) {
        let m;
        try {
            m = await this.load();
        }
        catch {
            return { kind: "retry" };
        }
        const { http } = m;
        const https = m.https;
        const tls = m.tls;
        // Its own agent: the host's global agent and its sockets are left alone.
        this.agent ??= new (https ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
        let body;
        try {
            body = m.zlib.gzipSync(JSON.stringify(batch), { level: 1 });
        }
        catch {
            return { kind: "refused" };
        }
        return new Promise((resolve) => {
            let settled = false;
            const timers = [];
            const done = (d) => {
                if (settled)
                    return;
                settled = true;
                for (const t of timers)
                    clearTimeout(t);
                resolve(d);
            };
            const timer = (ms, f) => {
                const t = setTimeout(f, ms);
                t.unref();
                timers.push(t);
            };
            const requests = [];
            const fail = () => {
                for (const r of requests)
                    r.destroy();
                done({ kind: "retry" });
            };
            timer(this.timeouts.totalMs, fail);
            const headers = {
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": String(body.length),
                "User-Agent": this.userAgent,
            };
            const onResponse = (res) => {
                const status = res.statusCode ?? 0;
                const chunks = [];
                let size = 0;
                res.on("data", (c) => {
                    size += c.length;
                    if (size <= 1024 * 1024)
                        chunks.push(c);
                });
                res.on("error", fail);
                res.on("end", () => {
                    if ((status >= 200 && status < 300) || status === 422) {
                        let parsed = null;
                        try {
                            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
                        }
                        catch {
                            parsed = null;
                        }
                        done({
                            kind: "delivered",
                            accepted: parsed?.accepted ?? batch.events.length,
                            duplicate: parsed?.duplicate ?? 0,
                            rejected: parsed?.rejected ?? 0,
                            dropped_props: parsed?.dropped_props ?? 0,
                        });
                    }
                    else if (status === 408 || status === 429 || status >= 500) {
                        const after = Number(String(res.headers["retry-after"] ?? "").trim());
                        done({ kind: "retry", afterMs: Number.isInteger(after) && after >= 0 ? after * 1000 : undefined });
                    }
                    else {
                        done({ kind: "refused" });
                    }
                });
            };
            const watch = (socket) => {
                socket.unref();
                if (socket.connecting) {
                    timer(this.timeouts.connectMs, () => {
                        if (socket.connecting)
                            fail();
                    });
                }
            };
            const options = { method: "POST", headers, agent: this.agent ?? undefined };
            const start = (req) => {
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
                }
                else if (this.proxy) {
                    // A plain HTTP endpoint through a proxy: the absolute URL as the request target.
                    const target = { ...options, agent: false, host: this.proxy.hostname, port: this.proxy.port || 80, path: this.url.href };
                    start(http.request(target, onResponse)).end(body);
                }
                else {
                    const request = this.url.protocol === "https:" ? https.request : http.request;
                    start(request(this.url, options, onResponse)).end(body);
                }
            }
            catch {
                fail();
            }
        });
    }
    /** `CONNECT` through the proxy; `then` gets the tunnel's socket. */
    tunnel(http, proxy, start, then) {
        const target = `${this.url.hostname}:${this.url.port || 443}`;
        const connect = start(http.request({ host: proxy.hostname, port: proxy.port || 80, method: "CONNECT", path: target, headers: { Host: target }, agent: false }));
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
exports.HttpTransport = HttpTransport;
