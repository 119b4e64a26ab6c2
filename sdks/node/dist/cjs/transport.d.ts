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
import { Batch } from "./protocol.js";
import type { Vars } from "./vars.js";
/** What happened to a batch. */
export type Delivery = 
/** The collector answered for every event (stored, duplicate or refused for good). */
{
    kind: "delivered";
    accepted: number;
    duplicate: number;
    rejected: number;
    dropped_props: number;
}
/** Try again later; the collector may have said when (ms). */
 | {
    kind: "retry";
    afterMs?: number;
}
/** Refused for good (a 4xx other than 408 and 429): retrying the same bytes cannot succeed. */
 | {
    kind: "refused";
};
export interface Transport {
    send(batch: Batch): Promise<Delivery>;
}
export interface Timeouts {
    connectMs: number;
    totalMs: number;
}
/** `https://t.example.com` -> `https://t.example.com/v1/batch`; a URL already ending in it is kept. */
export declare function batchUrl(endpoint: string): string;
/** The proxy for `url` from the environment, or `null` (also when `NO_PROXY` matches). */
export declare function proxyFor(url: URL, vars: Vars): URL | null;
/** The HTTP transport of one endpoint. */
export declare class HttpTransport implements Transport {
    private readonly userAgent;
    private readonly timeouts;
    private readonly url;
    private readonly proxy;
    private modules;
    private agent;
    constructor(endpoint: string, userAgent: string, timeouts: Timeouts, vars: Vars);
    private load;
    send(batch: Batch): Promise<Delivery>;
    /** `CONNECT` through the proxy; `then` gets the tunnel's socket. */
    private tunnel;
}
