"use strict";
/**
 * The client a tool records events with, and its sender.
 *
 * `createTelemetry` resolves consent, then (only when telemetry is local or on) loads or
 * creates the identity and starts the sender; off means no file written, no timer, no
 * socket. `record()` is synchronous and cheap: it scrubs and checks the event on the
 * caller's stack and pushes it onto a bounded queue; it never throws.
 *
 * The sender runs on the host's event loop without ever holding it: each batch goes out
 * on an unref'd socket after an unref'd timer (or at once when a batch is full), so a
 * tool whose work is done exits at once, whatever the network does. An outbox left by
 * earlier runs is sent first, once this run has recorded an event. On the process's
 * `exit` event, synchronously, whatever is still queued or in flight is filed in the
 * outbox for a later run: one file write, whatever the outbox holds. A batch in flight
 * there is marked posted, so later runs wait `resendAfter` before posting it again (the
 * collector most likely has it).
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.Telemetry = exports.SDK_VERSION = void 0;
exports.backoff = backoff;
exports.createTelemetry = createTelemetry;
const consent_js_1 = require("./consent.js");
const event_js_1 = require("./event.js");
const facts_js_1 = require("./facts.js");
const identity_js_1 = require("./identity.js");
const outbox_js_1 = require("./outbox.js");
const project_js_1 = require("./project.js");
const protocol_js_1 = require("./protocol.js");
const transport_js_1 = require("./transport.js");
const options_js_1 = require("./options.js");
/** The SDK's version, sent in the User-Agent. */
exports.SDK_VERSION = "0.1.0";
const BASE_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 300_000;
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Exponential backoff from 500 ms, or the collector's `Retry-After` when longer. */
function backoff(failures, retryAfterMs) {
    const exp = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(16, Math.max(0, failures - 1)));
    return Math.max(exp, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}
/** `s` cut to what the protocol accepts in versions and names: `[A-Za-z0-9._:+-]`, 64 bytes. */
function token(s, empty) {
    const t = String(s).replace(/[^A-Za-z0-9._:+-]/g, "").slice(0, protocol_js_1.MAX_NAME_LEN);
    return t === "" ? empty : t;
}
/** The client. Every method is safe to call in every mode and never throws. */
class Telemetry {
    /** @internal */
    resolved;
    options;
    recorder = null;
    adopted = null;
    closed = false;
    /** @internal use {@link createTelemetry} */
    constructor(options) {
        this.options = options;
        let resolved;
        try {
            resolved = (0, options_js_1.resolve)(options);
        }
        catch {
            resolved = offResolved(options);
        }
        this.resolved = resolved;
        if (resolved.projectId && resolved.decision.mode !== "off") {
            try {
                this.recorder = new Recorder(options, resolved, resolved.projectId);
            }
            catch {
                this.recorder = null;
            }
        }
        else if (resolved.debug) {
            process.stderr.write(`[${resolved.app} telemetry] off (decided by ${(0, consent_js_1.describeSource)(resolved.decision.source)}); nothing is recorded\n`);
        }
    }
    /** Records an event. Synchronous, cheap, never throws: off returns at once; an invalid event or a full queue drops it. */
    record(event, fields) {
        if (this.adopted)
            return this.adopted.record(event, fields);
        const r = this.recorder;
        if (!r)
            return;
        try {
            r.record(typeof event === "string" ? new event_js_1.Event(event, fields) : event);
        }
        catch {
            // never the host's problem
        }
    }
    /** The consent decision of this process. */
    get decision() {
        return this.adopted ? this.adopted.decision : this.resolved.decision;
    }
    /** The resolved mode. */
    get mode() {
        return this.decision.mode;
    }
    /** Whether events are recorded at all (mode local or on). */
    get enabled() {
        return this.adopted ? this.adopted.enabled : this.recorder !== null;
    }
    /** The tool's name. */
    get app() {
        return this.resolved.app;
    }
    /** The outbox, when there is a data directory. */
    outbox() {
        return this.resolved.paths.data ? new outbox_js_1.Outbox(this.resolved.paths.data) : null;
    }
    /**
     * Creates the project id in `dir` and records for that project from now on: a tool that
     * built its client before its `new` command created the project still records
     * `project.created`. Once per client. Throws when the manifest cannot be written.
     */
    createProjectId(dir, kind = "package-json") {
        const id = (0, project_js_1.createProjectId)(dir, this.resolved.app, kind);
        if (this.resolved.projectId !== id && !this.closed && !this.adopted) {
            this.adopted = new Telemetry({ ...this.options, projectDir: dir, projectId: id });
        }
        return id;
    }
    /**
     * Sends what is queued now (and what earlier runs left) and waits up to `timeoutMs` for
     * it to be delivered or safely stored; `true` when nothing is left in memory. This is
     * the one wait that keeps the event loop alive (at most `timeoutMs`): the host asked
     * for it. Without it, nothing the SDK does holds the host.
     */
    async flush(timeoutMs = 5000) {
        if (this.adopted)
            return this.adopted.flush(timeoutMs);
        if (!this.recorder)
            return true;
        try {
            return await this.recorder.flush(timeoutMs);
        }
        catch {
            return false;
        }
    }
    /** Stops the client now: what is unsent goes to the outbox for a later run. Later `record` calls are ignored. Runs by itself at process exit. */
    shutdown() {
        this.adopted?.shutdown();
        if (this.closed)
            return;
        this.closed = true;
        try {
            this.recorder?.shutdown();
        }
        catch {
            // never the host's problem
        }
    }
}
exports.Telemetry = Telemetry;
/** Resolves consent and starts the client. Never throws: anything that goes wrong leaves telemetry off or local. */
function createTelemetry(options) {
    return new Telemetry(options);
}
function offResolved(o) {
    return {
        app: String(o.app),
        command: String(o.command ?? o.app),
        prefix: "",
        decision: { mode: "off", source: { key: "author_default" } },
        debug: false,
        endpoint: null,
        project: null,
        projectId: null,
        paths: { userConfig: null, identity: null, data: null },
        ci: null,
        vars: {},
    };
}
/**
 * Whether this run is a notice run (records, uploads nothing): the first run on this
 * machine prints the notice. The notice is printed only once it is remembered: when the
 * config cannot be written no notice is printed and no run uploads.
 */
function noticeRun(command, userConfig, custom) {
    if (!userConfig)
        return true;
    let config = { notice_shown: false };
    try {
        config = (0, consent_js_1.loadUserConfig)(userConfig);
    }
    catch {
        // missing or unreadable: the notice has not been seen
    }
    if (config.notice_shown)
        return false;
    try {
        (0, consent_js_1.saveUserConfig)(userConfig, { ...config, notice_shown: true }, command);
    }
    catch {
        return true;
    }
    const text = custom ??
        `Attention: ${command} collects anonymous usage data (commands, features, versions, OS) to improve the tool. ` +
            `Nothing personal is collected and nothing is sent during this run.\n` +
            `  See what is kept:  ${command} telemetry show\n` +
            `  Opt out:           ${command} telemetry disable   (or DO_NOT_TRACK=1)`;
    process.stderr.write(`${text}\n`);
    return true;
}
/** What a client that records (mode local or on) holds: the queue and the sender. */
class Recorder {
    options;
    r;
    sanitizer;
    hostProps;
    queue = [];
    capacity;
    batchSize;
    flushIntervalMs;
    resendAfterMs;
    outbox;
    transport;
    makeContext;
    contextValue = null;
    inflight = null;
    /** Ids of the outbox being posted now. */
    postingOld = [];
    /** Outbox files this process holds while it sends them. */
    claimed = [];
    drainPending;
    busy = false;
    timer = null;
    failures = 0;
    retryAt = 0;
    dropped = 0;
    stopped = false;
    idleWaiters = [];
    /** When the oldest queued event was queued: it waits `flushIntervalMs` for others. */
    firstQueuedAt = 0;
    /** `flush()` asked to send now. */
    flushRequested = false;
    onExit = () => this.shutdown();
    constructor(options, r, projectId) {
        this.options = options;
        this.r = r;
        const vars = r.vars;
        // Identity first: the salt every recorded event is hashed with. A debug run creates nothing.
        let identity = null;
        if (r.paths.identity) {
            try {
                identity = r.debug ? (0, identity_js_1.loadIdentity)(r.paths.identity) : (0, identity_js_1.loadOrCreateIdentity)(r.paths.identity);
            }
            catch {
                identity = null;
            }
        }
        const known = options.knownPlugins ? new Set(options.knownPlugins) : null;
        this.sanitizer = new event_js_1.Sanitizer((0, identity_js_1.saltBytes)(identity ?? (0, identity_js_1.randomIdentity)(false)), known);
        const facts = (0, facts_js_1.gatherFacts)(vars, options.hostFacts === true);
        this.hostProps = [];
        if (options.hostFacts) {
            if (facts.cpus)
                this.hostProps.push(["host.cpus", facts.cpus]);
            if (facts.memoryGb)
                this.hostProps.push(["host.memory_gb", facts.memoryGb]);
        }
        const env = options.env ?? (0, facts_js_1.detectEnv)(vars, r.prefix);
        this.makeContext = () => {
            const c = {
                app: r.app,
                app_version: token(options.version, "unknown"),
                project: projectId,
                machine: (0, identity_js_1.machineId)(r.app, facts.ci, identity).hash,
                env,
                os: token(facts.os, "unknown"),
                os_version: token(facts.osVersion, ""),
                arch: token(facts.arch, "unknown"),
                runtime: "node",
                runtime_version: token(process.versions.node, ""),
                container: facts.container,
            };
            if (facts.ci)
                c.ci = facts.ci;
            return c;
        };
        this.capacity = Math.max(1, options.queueCapacity ?? 1000);
        this.batchSize = Math.min(protocol_js_1.MAX_EVENTS_PER_BATCH, Math.max(1, options.batchSize ?? 100));
        this.flushIntervalMs = options.flushIntervalMs ?? 1000;
        this.resendAfterMs = options.resendAfterMs ?? outbox_js_1.DEFAULT_RESEND_AFTER_MS;
        this.outbox = r.paths.data ? new outbox_js_1.Outbox(r.paths.data) : null;
        const notice = r.decision.mode === "on" &&
            !r.debug &&
            r.decision.source.key === "author_default" &&
            r.ci === null &&
            noticeRun(r.command, r.paths.userConfig, options.notice);
        const upload = r.decision.mode === "on" && !notice && !r.debug;
        this.transport = upload ? (options.transport ?? this.http()) : null;
        this.drainPending = this.transport !== null && this.outbox !== null && this.outbox.hasWaiting();
        process.on("exit", this.onExit);
    }
    http() {
        if (!this.r.endpoint)
            return null;
        try {
            return new transport_js_1.HttpTransport(this.r.endpoint, `tally-node/${exports.SDK_VERSION} ${this.r.app}/${token(this.options.version, "unknown")}`, { connectMs: this.options.connectTimeoutMs ?? 3000, totalMs: this.options.totalTimeoutMs ?? 10000 }, this.r.vars);
        }
        catch {
            return null;
        }
    }
    /** The batch context, computed once (the machine id may take a file read). */
    context() {
        if (!this.contextValue)
            this.contextValue = this.makeContext();
        return this.contextValue;
    }
    record(e) {
        if (this.stopped)
            return;
        const wire = this.sanitizer.wire(e);
        if (!wire)
            return;
        for (const [k, v] of this.hostProps) {
            wire.props = wire.props ?? {};
            if (!(k in wire.props) && Object.keys(wire.props).length < protocol_js_1.MAX_PROPS)
                wire.props[k] = v;
        }
        if (this.queue.length >= this.capacity) {
            this.dropped++;
            return;
        }
        if (this.queue.length === 0)
            this.firstQueuedAt = Date.now();
        this.queue.push(wire);
        if (this.r.debug)
            return;
        if (this.queue.length >= this.batchSize || (this.drainPending && Date.now() >= this.retryAt))
            this.kick(0);
        else if (!this.timer)
            this.kick(this.flushIntervalMs);
    }
    /** Runs the sender after `ms`, on an unref'd timer. */
    kick(ms) {
        if (this.timer) {
            if (ms > 0)
                return;
            clearTimeout(this.timer);
        }
        this.timer = setTimeout(() => {
            this.timer = null;
            void this.pump();
        }, ms);
        this.timer.unref();
    }
    /** One pass of the sender: the earlier runs' outbox first, then the queue, batch by batch. */
    async pump() {
        if (this.busy || this.stopped)
            return;
        this.busy = true;
        try {
            if (this.drainPending && Date.now() >= this.retryAt) {
                this.drainPending = false;
                const after = await this.drain();
                if (after !== null)
                    this.failed(after);
            }
            else if (this.outbox && this.transport === null && this.outbox.needsCompaction()) {
                this.outbox.compact();
            }
            // A batch goes when full, when its first event has waited the interval, or on flush().
            const ready = () => this.queue.length >= this.batchSize ||
                (this.queue.length > 0 && (this.flushRequested || Date.now() >= this.firstQueuedAt + this.flushIntervalMs));
            while (ready() && !this.stopped) {
                const events = this.queue.splice(0, protocol_js_1.MAX_EVENTS_PER_BATCH);
                this.firstQueuedAt = Date.now();
                await this.send(events);
            }
            if (this.queue.length === 0)
                this.flushRequested = false;
            else if (!this.stopped)
                this.kick(Math.max(0, this.firstQueuedAt + this.flushIntervalMs - Date.now()));
        }
        catch {
            // never the host's problem; what is unsent is in the queue or the outbox
        }
        finally {
            this.busy = false;
            this.warnDropped();
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const w of waiters)
                w();
        }
    }
    failed(afterMs) {
        this.failures++;
        const wait = backoff(this.failures, afterMs);
        this.retryAt = Date.now() + wait;
        this.drainPending = this.transport !== null && this.outbox !== null;
        const t = setTimeout(() => void this.pump(), wait);
        t.unref();
    }
    /** Posts own events (or, in local mode and while waiting out a failure, stores them). */
    async send(events) {
        const context = this.context();
        const post = this.transport !== null && Date.now() >= this.retryAt;
        this.inflight = { events, posting: post };
        let outcome = { kind: "retry" };
        if (post && this.transport)
            outcome = await this.transport.send({ sent_at: new Date().toISOString(), context, events });
        if (this.stopped)
            return;
        this.inflight = null;
        if (outcome.kind === "delivered") {
            this.failures = 0;
            this.logSent(context, events, outcome);
        }
        else if (outcome.kind === "retry") {
            let saved = false;
            try {
                saved = this.outbox !== null && (this.outbox.append(context, events), true);
            }
            catch {
                saved = false;
            }
            if (post)
                this.failed(outcome.afterMs);
            if (!saved && this.transport)
                this.queue.unshift(...events);
            if (!saved)
                throw new Error("nowhere to keep the events");
        }
    }
    /** Sends what earlier runs left, one batch per context; `null` on success, else the Retry-After (ms) of the failure. */
    async drain() {
        const outbox = this.outbox;
        const transport = this.transport;
        if (!outbox || !transport)
            return null;
        this.claimed = outbox.claim();
        if (this.claimed.length === 0)
            return null;
        // The chunks as stored (bounded), which keep their posted marks; sent as one batch per
        // context (of at most 500 events), not one per run that wrote them.
        const all = outbox.bound(outbox.read(this.claimed));
        const now = Date.now();
        const due = [];
        for (const c of all.filter((x) => (0, outbox_js_1.isDue)(x, now, this.resendAfterMs))) {
            const last = due[due.length - 1];
            if (last && JSON.stringify(last.context) === JSON.stringify(c.context))
                last.events.push(...c.events);
            else
                due.push({ context: c.context, events: [...c.events] });
        }
        const done = new Set();
        const left = () => all.map((c) => ({ ...c, events: c.events.filter((e) => !done.has(e.event_id)) }));
        let result = null;
        for (const chunk of due) {
            for (let i = 0; i < chunk.events.length && result === null; i += protocol_js_1.MAX_EVENTS_PER_BATCH) {
                const piece = chunk.events.slice(i, i + protocol_js_1.MAX_EVENTS_PER_BATCH);
                this.postingOld = piece.map((e) => e.event_id);
                const outcome = await transport.send({ sent_at: new Date().toISOString(), context: chunk.context, events: piece });
                if (this.stopped)
                    return null;
                this.postingOld = [];
                if (outcome.kind === "retry") {
                    result = outcome.afterMs;
                    break;
                }
                // Delivered, or refused for good: either way never sent again.
                for (const e of piece)
                    done.add(e.event_id);
                if (outcome.kind === "delivered")
                    this.logSent(chunk.context, piece, outcome);
                this.claimed = outbox.reclaim(this.claimed, left());
            }
            if (result !== null)
                break;
        }
        const claimed = this.claimed;
        this.claimed = [];
        outbox.release(claimed, left());
        return result;
    }
    logSent(context, events, d) {
        try {
            this.outbox?.logSent({
                sent_at: new Date().toISOString(),
                context,
                events,
                accepted: d.accepted,
                duplicate: d.duplicate,
                rejected: d.rejected,
                dropped_props: d.dropped_props,
            });
        }
        catch {
            // the sent-log is for the user's eyes; losing a line loses no event
        }
    }
    warnDropped() {
        if (this.dropped > 0) {
            process.stderr.write(`warning: ${this.r.app} telemetry queue is full; ${this.dropped} or more events were dropped\n`);
            this.dropped = -Infinity;
        }
    }
    async flush(timeoutMs) {
        if (this.r.debug) {
            this.printDebug(this.queue.splice(0));
            return true;
        }
        if (this.stopped)
            return this.queue.length === 0;
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            const idle = !this.busy && this.queue.length === 0 && !(this.drainPending && Date.now() >= this.retryAt);
            if (idle)
                return true;
            await new Promise((resolveIdle) => {
                // Ref'd, unlike everything else here: the host asked to wait (at most `timeoutMs`).
                const t = setTimeout(resolveIdle, Math.max(1, deadline - Date.now()));
                this.idleWaiters.push(() => {
                    clearTimeout(t);
                    resolveIdle();
                });
                this.flushRequested = true;
                if (!this.busy)
                    this.kick(0);
            });
        }
        return !this.busy && this.queue.length === 0;
    }
    /** Files what is not safe yet in the outbox; synchronous (it runs in the `exit` event). */
    shutdown() {
        if (this.stopped)
            return;
        this.stopped = true;
        process.removeListener("exit", this.onExit);
        if (this.timer)
            clearTimeout(this.timer);
        if (this.r.debug) {
            this.printDebug(this.queue.splice(0));
            this.warnDropped();
            return;
        }
        const queued = this.queue.splice(0);
        const posted = [];
        if (this.inflight)
            (this.inflight.posting ? posted : queued).unshift(...this.inflight.events);
        this.inflight = null;
        const any = queued.length + posted.length + this.postingOld.length + this.claimed.length > 0;
        if (any && this.outbox) {
            try {
                this.outbox.leaveAtExit(queued.length + posted.length > 0 ? this.context() : null, queued, posted, this.postingOld, this.claimed);
            }
            catch {
                // nowhere to keep them: lost, as a crash would lose them
            }
        }
        this.claimed = [];
        this.warnDropped();
    }
    printDebug(events) {
        if (events.length === 0)
            return;
        const { app, decision } = this.r;
        for (let i = 0; i < events.length; i += protocol_js_1.MAX_EVENTS_PER_BATCH) {
            const batch = { sent_at: new Date().toISOString(), context: this.context(), events: events.slice(i, i + protocol_js_1.MAX_EVENTS_PER_BATCH) };
            process.stderr.write(`[${app} telemetry debug] mode ${decision.mode} (${(0, consent_js_1.describeSource)(decision.source)}); this payload would be ${decision.mode === "on" ? "sent" : "kept locally"}; nothing was sent:\n${JSON.stringify(batch, null, 2)}\n`);
        }
    }
}
