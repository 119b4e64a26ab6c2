/**
 * The client a tool records events with, and its sender.
 *
 * `createTelemetry` resolves consent, then (only when telemetry is local or on) loads or
 * creates the identity and starts the sender; off means no file written, no timer, no
 * socket. `record()` is synchronous and cheap: it scrubs and checks the event on the
 * caller's stack and pushes it onto a bounded queue; it never throws.
 *
 * A short command posts nothing itself: on the process's `exit` event, synchronously,
 * what is queued is filed in the outbox (one file write, whatever the outbox holds) and,
 * with consent to upload, a detached flusher process is started on it (flusher.ts), so
 * the host neither loads the HTTP stack nor waits for the network.
 *
 * A longer run (one `flushIntervalMs` and more, or a `flush()` call) sends from its own
 * event loop without ever holding it: each batch goes out on an unref'd socket after an
 * unref'd timer, so a tool whose work is done exits at once, whatever the network does;
 * an outbox left by earlier runs is sent first. What is in flight at exit is filed in the
 * outbox marked posted, so later senders wait `resendAfter` before posting it again (the
 * collector most likely has it).
 */

import { saveCodeCache } from "./codecache.js";
import { Decision, loadUserConfig, Mode, saveUserConfig, describeSource, UserConfig } from "./consent.js";
import { Event, EventFields, Sanitizer } from "./event.js";
import { detectEnv, Facts, gatherFacts } from "./facts.js";
import { LocalIdentity, loadIdentity, loadOrCreateIdentity, machineId, randomIdentity, saltBytes } from "./identity.js";
import { backoff, drainOutbox, DrainState, spawnFlusher } from "./flusher.js";
import { DEFAULT_RESEND_AFTER_MS, Outbox } from "./outbox.js";
import { createProjectId as writeProjectId, ManifestKind } from "./project.js";
import { allIn, Context, MAX_EVENTS_PER_BATCH, MAX_NAME_LEN, MAX_PROPS, PropValue, TOKEN_CHARS, WireEvent } from "./protocol.js";
import { Delivery, HttpTransport, Transport } from "./transport.js";
import { resolve, Resolved, TelemetryOptions } from "./options.js";
import { isoTime } from "./time.js";

/** The SDK's version, sent in the User-Agent. */
export const SDK_VERSION = "0.1.0";

export { backoff } from "./flusher.js";

/** `s` cut to what the protocol accepts in versions and names: `[A-Za-z0-9._:+-]`, 64 bytes. */
function token(s: string, empty: string): string {
  const text = String(s);
  let t = text;
  if (!allIn(text, TOKEN_CHARS)) {
    t = "";
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 128 && TOKEN_CHARS[c] === 1) t += text[i];
    }
  }
  t = t.slice(0, MAX_NAME_LEN);
  return t === "" ? empty : t;
}

/** The client. Every method is safe to call in every mode and never throws. */
export class Telemetry {
  /** @internal */
  readonly resolved: Resolved;
  private readonly options: TelemetryOptions;
  private recorder: Recorder | null = null;
  private adopted: Telemetry | null = null;
  private closed = false;

  /** @internal use {@link createTelemetry} */
  constructor(options: TelemetryOptions) {
    this.options = options;
    let resolved: Resolved;
    try {
      resolved = resolve(options);
    } catch {
      resolved = offResolved(options);
    }
    this.resolved = resolved;
    if (resolved.projectId && resolved.decision.mode !== "off") {
      try {
        this.recorder = new Recorder(options, resolved, resolved.projectId);
      } catch {
        this.recorder = null;
      }
    } else if (resolved.debug) {
      process.stderr.write(`[${resolved.app} telemetry] off (decided by ${describeSource(resolved.decision.source)}); nothing is recorded\n`);
    }
  }

  /** Records an event. Synchronous, cheap, never throws: off returns at once; an invalid event or a full queue drops it. */
  record(event: Event | string, fields?: EventFields): void {
    if (this.adopted) return this.adopted.record(event, fields);
    const r = this.recorder;
    if (!r) return;
    try {
      r.record(typeof event === "string" ? new Event(event, fields) : event);
    } catch {
      // never the host's problem
    }
  }

  /** The consent decision of this process. */
  get decision(): Decision {
    return this.adopted ? this.adopted.decision : this.resolved.decision;
  }

  /** The resolved mode. */
  get mode(): Mode {
    return this.decision.mode;
  }

  /** Whether events are recorded at all (mode local or on). */
  get enabled(): boolean {
    return this.adopted ? this.adopted.enabled : this.recorder !== null;
  }

  /** The tool's name. */
  get app(): string {
    return this.resolved.app;
  }

  /** The outbox, when there is a data directory. */
  outbox(): Outbox | null {
    return this.resolved.paths.data ? new Outbox(this.resolved.paths.data) : null;
  }

  /**
   * Creates the project id in `dir` and records for that project from now on: a tool that
   * built its client before its `new` command created the project still records
   * `project.created`. Once per client. Throws when the manifest cannot be written.
   */
  createProjectId(dir: string, kind: ManifestKind = "package-json"): string {
    const id = writeProjectId(dir, this.resolved.app, kind);
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
  async flush(timeoutMs = 5000): Promise<boolean> {
    if (this.adopted) return this.adopted.flush(timeoutMs);
    if (!this.recorder) return true;
    try {
      return await this.recorder.flush(timeoutMs);
    } catch {
      return false;
    }
  }

  /** Stops the client now: what is unsent goes to the outbox for a later run. Later `record` calls are ignored. Runs by itself at process exit. */
  shutdown(): void {
    this.adopted?.shutdown();
    if (this.closed) return;
    this.closed = true;
    try {
      this.recorder?.shutdown();
    } catch {
      // never the host's problem
    }
  }
}

/** Resolves consent and starts the client. Never throws: anything that goes wrong leaves telemetry off or local. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  return new Telemetry(options);
}

function offResolved(o: TelemetryOptions): Resolved {
  return {
    app: String(o.app),
    command: String(o.command ?? o.app),
    prefix: "",
    decision: { mode: "off", source: { key: "author_default" } },
    debug: false,
    endpoint: null,
    project: null,
    projectId: null,
    paths: { userConfig: null, identity: null, machineCache: null, data: null },
    ci: null,
    vars: {},
  };
}

/**
 * Whether this run is a notice run (records, uploads nothing): the first run on this
 * machine prints the notice. The notice is printed only once it is remembered: when the
 * config cannot be written no notice is printed and no run uploads.
 */
function noticeRun(command: string, userConfig: string | null, read: UserConfig | null | undefined, custom: string | undefined): boolean {
  if (!userConfig) return true;
  let config: UserConfig = read ?? { notice_shown: false };
  if (read === undefined) {
    try {
      config = loadUserConfig(userConfig);
    } catch {
      // missing or unreadable: the notice has not been seen
    }
  }
  if (config.notice_shown) return false;
  try {
    saveUserConfig(userConfig, { ...config, notice_shown: true }, command);
  } catch {
    return true;
  }
  const text =
    custom ??
    `Attention: ${command} collects anonymous usage data (commands, features, versions, OS) to improve the tool. ` +
      `Nothing personal is collected and nothing is sent during this run.\n` +
      `  See what is kept:  ${command} telemetry show\n` +
      `  Opt out:           ${command} telemetry disable   (or DO_NOT_TRACK=1)`;
  process.stderr.write(`${text}\n`);
  return true;
}

/** A batch taken off the queue and not yet safe. */
interface InFlight {
  events: WireEvent[];
  /** Being posted (not merely written to the outbox). */
  posting: boolean;
}

/** What a client that records (mode local or on) holds: the queue and the sender. */
class Recorder {
  private readonly sanitizer: Sanitizer;
  private readonly hostProps: [string, PropValue][];
  private readonly queue: WireEvent[] = [];
  private readonly capacity: number;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly resendAfterMs: number;
  private readonly outbox: Outbox | null;
  private readonly transport: Transport | null;
  private readonly makeContext: () => Context;
  private contextValue: Context | null = null;
  private inflight: InFlight | null = null;
  /** The outbox files this process holds while it sends them, and the ids being posted. */
  private readonly draining: DrainState = { claimed: [], postingOld: [] };
  /** Whether this run hands what it leaves to a detached flusher at exit (flusher.ts). */
  private readonly detached: boolean;
  /** When the client started: nothing is posted from this process before one interval has passed. */
  private readonly startedAt = Date.now();
  private drainPending: boolean;
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private retryAt = 0;
  private dropped = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  /** When the oldest queued event was queued: it waits `flushIntervalMs` for others. */
  private firstQueuedAt = 0;
  /** `flush()` asked to send now. */
  private flushRequested = false;
  private readonly onExit = () => this.shutdown();
  /** An event was recorded: at exit, the code cache is written if there is none. */
  private recorded = false;

  constructor(
    private readonly options: TelemetryOptions,
    private readonly r: Resolved,
    projectId: string,
  ) {
    const vars = r.vars;
    // Identity first: the salt every recorded event is hashed with. A debug run creates nothing.
    let identity: LocalIdentity | null = null;
    if (r.paths.identity) {
      try {
        identity = r.debug ? loadIdentity(r.paths.identity) : loadOrCreateIdentity(r.paths.identity);
      } catch {
        identity = null;
      }
    }
    const known = options.knownPlugins ? new Set(options.knownPlugins) : null;
    this.sanitizer = new Sanitizer(() => saltBytes(identity ?? randomIdentity(false)), known);
    const facts: Facts = gatherFacts(vars, options.hostFacts === true);
    this.hostProps = [];
    if (options.hostFacts) {
      if (facts.cpus) this.hostProps.push(["host.cpus", facts.cpus]);
      if (facts.memoryGb) this.hostProps.push(["host.memory_gb", facts.memoryGb]);
    }
    const env = options.env ?? detectEnv(vars, r.prefix);
    this.makeContext = () => {
      const c: Context = {
        app: r.app,
        app_version: token(options.version, "unknown"),
        project: projectId,
        machine: machineId(r.app, facts.ci, identity, r.debug ? null : r.paths.machineCache).hash,
        env,
        os: token(facts.os, "unknown"),
        os_version: token(facts.osVersion, ""),
        arch: token(facts.arch, "unknown"),
        runtime: "node",
        runtime_version: token(process.versions.node, ""),
        container: facts.container,
      };
      if (facts.ci) c.ci = facts.ci;
      return c;
    };
    this.capacity = Math.max(1, options.queueCapacity ?? 1000);
    this.batchSize = Math.min(MAX_EVENTS_PER_BATCH, Math.max(1, options.batchSize ?? 100));
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.resendAfterMs = options.resendAfterMs ?? DEFAULT_RESEND_AFTER_MS;
    this.outbox = r.paths.data ? new Outbox(r.paths.data) : null;
    const notice =
      r.decision.mode === "on" &&
      !r.debug &&
      r.decision.source.key === "author_default" &&
      r.ci === null &&
      noticeRun(r.command, r.paths.userConfig, r.userConfig, options.notice);
    const upload = r.decision.mode === "on" && !notice && !r.debug;
    this.transport = upload ? (options.transport ?? this.http()) : null;
    // Our own HTTP transport (not a test sink) can be handed to another process.
    this.detached = upload && !options.transport && this.transport !== null;
    this.drainPending = this.transport !== null && this.outbox !== null && this.outbox.hasWaiting();
    process.on("exit", this.onExit);
  }

  private http(): Transport | null {
    if (!this.r.endpoint) return null;
    try {
      return new HttpTransport(this.r.endpoint, this.userAgent(), this.timeouts(), this.r.vars);
    } catch {
      return null;
    }
  }

  private userAgent(): string {
    return `tally-node/${SDK_VERSION} ${this.r.app}/${token(this.options.version, "unknown")}`;
  }

  private timeouts(): { connectMs: number; totalMs: number } {
    return { connectMs: this.options.connectTimeoutMs ?? 3000, totalMs: this.options.totalTimeoutMs ?? 10000 };
  }

  /** The batch context, computed once (the machine id may take a file read). */
  private context(): Context {
    if (!this.contextValue) this.contextValue = this.makeContext();
    return this.contextValue;
  }

  record(e: Event): void {
    if (this.stopped) return;
    const wire = this.sanitizer.wire(e);
    if (!wire) return;
    for (const [k, v] of this.hostProps) {
      wire.props = wire.props ?? {};
      if (!(k in wire.props) && Object.keys(wire.props).length < MAX_PROPS) wire.props[k] = v;
    }
    if (this.queue.length >= this.capacity) {
      this.dropped++;
      return;
    }
    if (this.queue.length === 0) this.firstQueuedAt = Date.now();
    this.queue.push(wire);
    this.recorded = true;
    if (this.r.debug) return;
    // Nothing is posted from here before the client is one interval old: a short command
    // never loads the HTTP stack, it hands its events to the detached flusher at exit.
    const wait = this.detached ? Math.max(0, this.startedAt + this.flushIntervalMs - Date.now()) : 0;
    if (this.queue.length >= this.batchSize || (this.drainPending && Date.now() >= this.retryAt)) this.kick(wait);
    else if (!this.timer) this.kick(this.flushIntervalMs);
  }

  /** Runs the sender after `ms`, on an unref'd timer. */
  private kick(ms: number): void {
    if (this.timer) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pump();
    }, ms);
    this.timer.unref();
  }

  /** One pass of the sender: the earlier runs' outbox first, then the queue, batch by batch. */
  private async pump(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (this.drainPending && Date.now() >= this.retryAt) {
        this.drainPending = false;
        const after = await this.drain();
        if (after !== null) this.failed(after);
      } else if (this.outbox && this.transport === null && this.outbox.needsCompaction()) {
        this.outbox.compact();
      }
      // A batch goes when full, when its first event has waited the interval, or on flush().
      const ready = () =>
        this.queue.length >= this.batchSize ||
        (this.queue.length > 0 && (this.flushRequested || Date.now() >= this.firstQueuedAt + this.flushIntervalMs));
      while (ready() && !this.stopped) {
        const events = this.queue.splice(0, MAX_EVENTS_PER_BATCH);
        this.firstQueuedAt = Date.now();
        await this.send(events);
      }
      if (this.queue.length === 0) this.flushRequested = false;
      else if (!this.stopped) this.kick(Math.max(0, this.firstQueuedAt + this.flushIntervalMs - Date.now()));
    } catch {
      // never the host's problem; what is unsent is in the queue or the outbox
    } finally {
      this.busy = false;
      this.warnDropped();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private failed(afterMs?: number): void {
    this.failures++;
    const wait = backoff(this.failures, afterMs);
    this.retryAt = Date.now() + wait;
    this.drainPending = this.transport !== null && this.outbox !== null;
    const t = setTimeout(() => void this.pump(), wait);
    t.unref();
  }

  /** Posts own events (or, in local mode and while waiting out a failure, stores them). */
  private async send(events: WireEvent[]): Promise<void> {
    const context = this.context();
    const post = this.transport !== null && Date.now() >= this.retryAt;
    this.inflight = { events, posting: post };
    let outcome: Delivery = { kind: "retry" };
    if (post && this.transport) outcome = await this.transport.send({ sent_at: isoTime(Date.now()), context, events });
    if (this.stopped) return;
    this.inflight = null;
    if (outcome.kind === "delivered") {
      this.failures = 0;
      this.logSent(context, events, outcome);
    } else if (outcome.kind === "retry") {
      let saved = false;
      try {
        saved = this.outbox !== null && (this.outbox.append(context, events), true);
      } catch {
        saved = false;
      }
      if (post) this.failed(outcome.afterMs);
      if (!saved && this.transport) this.queue.unshift(...events);
      if (!saved) throw new Error("nowhere to keep the events");
    }
  }

  /** Sends what earlier runs left (flusher.ts); `null` on success, else the Retry-After (ms) of the failure. */
  private async drain(): Promise<number | undefined | null> {
    if (!this.outbox || !this.transport) return null;
    const drained = await drainOutbox(this.outbox, this.transport, this.resendAfterMs, this.draining, () => this.stopped, (c, e, d) =>
      this.logSent(c, e, d),
    );
    return drained.retry;
  }

  private logSent(context: Context, events: WireEvent[], d: Extract<Delivery, { kind: "delivered" }>): void {
    try {
      this.outbox?.logSent({
        sent_at: isoTime(Date.now()),
        context,
        events,
        accepted: d.accepted,
        duplicate: d.duplicate,
        rejected: d.rejected,
        dropped_props: d.dropped_props,
      });
    } catch {
      // the sent-log is for the user's eyes; losing a line loses no event
    }
  }

  private warnDropped(): void {
    if (this.dropped > 0) {
      process.stderr.write(`warning: ${this.r.app} telemetry queue is full; ${this.dropped} or more events were dropped\n`);
      this.dropped = -Infinity;
    }
  }

  async flush(timeoutMs: number): Promise<boolean> {
    if (this.r.debug) {
      this.printDebug(this.queue.splice(0));
      return true;
    }
    if (this.stopped) return this.queue.length === 0;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const idle = !this.busy && this.queue.length === 0 && !(this.drainPending && Date.now() >= this.retryAt);
      if (idle) return true;
      await new Promise<void>((resolveIdle) => {
        // Ref'd, unlike everything else here: the host asked to wait (at most `timeoutMs`).
        const t = setTimeout(resolveIdle, Math.max(1, deadline - Date.now()));
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolveIdle();
        });
        this.flushRequested = true;
        if (!this.busy) this.kick(0);
      });
    }
    return !this.busy && this.queue.length === 0;
  }

  /** Files what is not safe yet in the outbox; synchronous (it runs in the `exit` event). */
  shutdown(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener("exit", this.onExit);
    if (this.timer) clearTimeout(this.timer);
    if (this.r.debug) {
      this.printDebug(this.queue.splice(0));
      this.warnDropped();
      return;
    }
    const queued = this.queue.splice(0);
    const posted: WireEvent[] = [];
    if (this.inflight) (this.inflight.posting ? posted : queued).unshift(...this.inflight.events);
    this.inflight = null;
    const { claimed, postingOld } = this.draining;
    const any = queued.length + posted.length + postingOld.length + claimed.length > 0;
    let filed = false;
    if (any && this.outbox) {
      try {
        this.outbox.leaveAtExit(queued.length + posted.length > 0 ? this.context() : null, queued, posted, postingOld, claimed);
        filed = true;
      } catch {
        // nowhere to keep them: lost, as a crash would lose them
      }
    }
    this.draining.claimed = [];
    this.draining.postingOld = [];
    if (this.detached && this.outbox && (filed || this.drainPending)) this.handOver(this.outbox.dir);
    this.warnDropped();
    // Last, so that the cache holds every function a recording run compiled. Not for a
    // client given its own directories (a test's sandbox): the cache lives in the user's.
    if (this.recorded && !this.options.configDir && !this.options.dataDir) saveCodeCache();
  }

  /** Starts the detached flusher on what this run leaves (and what earlier runs left). */
  private handOver(dir: string): void {
    const endpoint = this.r.endpoint;
    if (!endpoint) return;
    spawnFlusher(
      dir,
      () => {
        const vars: Record<string, string> = {};
        for (const [k, v] of Object.entries(this.r.vars)) if (v !== undefined && /^(https?|all|no)_proxy$/i.test(k)) vars[k] = v;
        return { dir, endpoint, userAgent: this.userAgent(), timeouts: this.timeouts(), resendAfterMs: this.resendAfterMs, vars };
      },
      this.options.flushGapMs,
    );
  }

  private printDebug(events: WireEvent[]): void {
    if (events.length === 0) return;
    const { app, decision } = this.r;
    for (let i = 0; i < events.length; i += MAX_EVENTS_PER_BATCH) {
      const batch = { sent_at: isoTime(Date.now()), context: this.context(), events: events.slice(i, i + MAX_EVENTS_PER_BATCH) };
      process.stderr.write(
        `[${app} telemetry debug] mode ${decision.mode} (${describeSource(decision.source)}); this payload would be ${
          decision.mode === "on" ? "sent" : "kept locally"
        }; nothing was sent:\n${JSON.stringify(batch, null, 2)}\n`,
      );
    }
  }
}
