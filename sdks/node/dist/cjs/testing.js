"use strict";
/**
 * Test kit for tool authors (`tally-telemetry/testing`):
 *
 * - {@link MemorySink}: a transport that keeps batches in memory, to assert what was recorded;
 * - {@link Sandbox}: fresh config and data directories, an allow-all policy and an empty
 *   environment, so a test's outcome does not depend on the developer's `DO_NOT_TRACK` or
 *   CI variables, and an assertion that a client created no file;
 * - {@link ConnectionTrap}: a loopback listener that counts connection attempts, to assert
 *   that a disabled client opened no socket;
 * - {@link assertLeavesNoTrace}: all of it at once, and that no process was started (a
 *   client that uploads hands its events to a detached flusher process at exit).
 *
 * ```js
 * const sandbox = new Sandbox();
 * const sink = new MemorySink();
 * const t = createTelemetry({ ...sandbox.options("mytool", "1.0.0"), transport: sink });
 * t.record(Event.commandRun("build"));
 * await t.flush();
 * sink.assertRecorded("command.run");
 * ```
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.ConnectionTrap = exports.Sandbox = exports.MemorySink = void 0;
exports.assertLeavesNoTrace = assertLeavesNoTrace;
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const lazy_js_1 = require("./lazy.js");
/** Batches delivered in memory. */
class MemorySink {
    batches = [];
    send(batch) {
        this.batches.push(JSON.parse(JSON.stringify(batch)));
        return Promise.resolve({ kind: "delivered", accepted: batch.events.length, duplicate: 0, rejected: 0, dropped_props: 0 });
    }
    /** Every event delivered so far, in order. */
    events() {
        return this.batches.flatMap((b) => b.events);
    }
    /** The names of the events delivered so far. */
    names() {
        return this.events().map((e) => e.event);
    }
    /** The first delivered event named `name`; throws with the list of names otherwise. */
    assertRecorded(name) {
        const e = this.events().find((x) => x.event === name);
        if (!e)
            throw new Error(`no ${JSON.stringify(name)} event was delivered; got ${JSON.stringify(this.names())}`);
        return e;
    }
    /** Throws when an event named `name` was delivered. */
    assertNotRecorded(name) {
        if (this.names().includes(name))
            throw new Error(`${JSON.stringify(name)} was delivered`);
    }
    /** Throws when anything was delivered. */
    assertEmpty() {
        if (this.batches.length > 0)
            throw new Error(`delivered: ${JSON.stringify(this.names())}`);
    }
}
exports.MemorySink = MemorySink;
const SEED_MARK = "# seeded by tally-telemetry/testing Sandbox";
/** Fresh, private config and data directories; `remove()` deletes them. */
class Sandbox {
    root;
    constructor() {
        this.root = fs.mkdtempSync(path.join(os.tmpdir(), "tally-sandbox-"));
    }
    /**
     * Options confined to the sandbox: its config and data directories, its own policy file
     * (allowing telemetry), an empty environment (pass `vars` to set some), a fixed project
     * id, and the first-run notice already seen so the first run delivers.
     */
    options(app, version, vars = {}) {
        const configDir = path.join(this.root, "config");
        const policyPath = path.join(this.root, "policy.toml");
        fs.writeFileSync(policyPath, `${SEED_MARK}\ntelemetry = "allow"\n`);
        fs.mkdirSync(configDir, { recursive: true });
        const config = path.join(configDir, "config.toml");
        if (!fs.existsSync(config))
            fs.writeFileSync(config, `${SEED_MARK}\nnotice_shown = true\n`);
        return {
            app,
            version,
            configDir,
            dataDir: path.join(this.root, "data"),
            policyPath,
            projectId: "7b581c0d-89b7-479e-b379-a76ab90b8754",
            vars,
        };
    }
    /** Every file under the sandbox, except the ones the sandbox seeded itself. */
    files() {
        const out = [];
        const walk = (dir) => {
            for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
                const p = path.join(dir, e.name);
                if (e.isDirectory())
                    walk(p);
                else if (!fs.readFileSync(p, "utf8").includes(SEED_MARK))
                    out.push(p);
            }
        };
        walk(this.root);
        return out;
    }
    /** Throws when the sandbox holds any file besides the ones it seeded. */
    assertNoFiles() {
        const files = this.files();
        if (files.length > 0)
            throw new Error(`files were created: ${JSON.stringify(files)}`);
    }
    /** Deletes the sandbox. */
    remove() {
        fs.rmSync(this.root, { recursive: true, force: true });
    }
}
exports.Sandbox = Sandbox;
/** A loopback listener that counts connection attempts (each is closed at once). */
class ConnectionTrap {
    count = 0;
    server;
    constructor(server) {
        this.server = server;
        server.on("connection", (s) => {
            this.count++;
            s.destroy();
        });
    }
    /** Binds `127.0.0.1:0`. */
    static async open() {
        const server = net.createServer();
        await new Promise((ok, fail) => {
            server.once("error", fail);
            server.listen(0, "127.0.0.1", () => ok());
        });
        server.unref();
        return new ConnectionTrap(server);
    }
    /** `http://127.0.0.1:<port>`, to use as the endpoint. */
    get endpoint() {
        const a = this.server.address();
        return `http://127.0.0.1:${a.port}`;
    }
    /** How many connections were attempted so far. */
    get connections() {
        return this.count;
    }
    close() {
        return new Promise((ok) => this.server.close(() => ok()));
    }
}
exports.ConnectionTrap = ConnectionTrap;
/**
 * Runs `use` with a client built from the sandbox's options pointed at a connection trap,
 * lets every timer and socket it might start run, and throws when it created a file,
 * opened a socket or started a process: what a disabled client must never do. Processes
 * are counted by wrapping `child_process`'s functions while `use` and the settling run
 * (then they are restored); the SDK's own calls go through them.
 */
async function assertLeavesNoTrace(sandbox, use, settleMs = 50) {
    const trap = await ConnectionTrap.open();
    const cp = (0, lazy_js_1.childProcess)();
    const names = ["spawn", "spawnSync", "execFile", "execFileSync", "exec", "execSync", "fork"];
    const originals = names.map((n) => cp[n]);
    const started = [];
    names.forEach((n, i) => {
        const f = originals[i];
        cp[n] = (...a) => {
            started.push(`${n}(${String(a[0])})`);
            return f(...a);
        };
    });
    try {
        await use(trap.endpoint);
        await new Promise((ok) => setTimeout(ok, settleMs));
        sandbox.assertNoFiles();
        if (started.length > 0)
            throw new Error(`a process was started: ${started.join(", ")}`);
        if (trap.connections > 0)
            throw new Error(`${trap.connections} connection(s) were opened`);
    }
    finally {
        names.forEach((n, i) => (cp[n] = originals[i]));
        await trap.close();
    }
}
