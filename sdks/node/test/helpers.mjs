// Shared by the tests: sandboxed homes, the example CLI as a child process, and a real
// `tally serve` on loopback.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const repo = path.resolve(root, "..", "..");
export const nodecli = path.join(root, "examples", "nodecli.mjs");
export const PROJECT_ID = "7b581c0d-89b7-479e-b379-a76ab90b8754";

/**
 * Waits until the detached flusher of `dataDir` (if any) has exited: its lock is gone and
 * nothing is claimed. Throws after `timeoutMs`.
 */
export async function flusherDone(dataDir, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  const busy = () => {
    try {
      return fs.readdirSync(dataDir).some((n) => n === "flush.lock" || n.startsWith("claimed-"));
    } catch {
      return false;
    }
  };
  while (busy()) {
    if (Date.now() > deadline) throw new Error(`the flusher of ${dataDir} is still running after ${timeoutMs} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

/** A temporary home with a project (package.json with a nodecli id) and an allow-all policy. */
export class Home {
  constructor({ project = true, noticeSeen = true } = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-test-"));
    this.project = path.join(this.dir, "project");
    fs.mkdirSync(this.project);
    const pkg = project ? { name: "site", nodecli: { uuid: PROJECT_ID } } : { name: "site" };
    fs.writeFileSync(path.join(this.project, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
    this.policy = path.join(this.dir, "policy.toml");
    fs.writeFileSync(this.policy, 'telemetry = "allow"\n');
    this.configDir = path.join(this.dir, ".config", "tally", "nodecli");
    this.dataDir = path.join(this.dir, ".local", "share", "tally", "nodecli");
    if (noticeSeen) {
      fs.mkdirSync(this.configDir, { recursive: true });
      fs.writeFileSync(path.join(this.configDir, "config.toml"), "notice_shown = true\n");
    }
  }

  /** A clean environment: no developer or CI variable leaks in. */
  env(extra = {}) {
    return {
      PATH: process.env.PATH,
      HOME: this.dir,
      TALLY_POLICY: this.policy,
      ...extra,
    };
  }

  /** Runs the example CLI in the project; returns { status, stdout, stderr, ms }. */
  run(args, extra = {}) {
    const started = performance.now();
    const r = spawnSync(process.execPath, [nodecli, "-C", this.project, ...args], {
      cwd: this.project,
      env: this.env(extra),
      encoding: "utf8",
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started };
  }

  /** Starts the example CLI without waiting. */
  start(args, extra = {}) {
    const child = spawn(process.execPath, [nodecli, "-C", this.project, ...args], {
      cwd: this.project,
      env: this.env(extra),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    return new Promise((ok) => child.on("close", (status) => ok({ status, stdout, stderr })));
  }

  status(extra = {}) {
    const r = this.run(["telemetry", "status", "--json"], extra);
    if (r.status !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** Every file under the home except the ones the test seeded. */
  files() {
    const seeded = new Set([path.join(this.project, "package.json"), this.policy, path.join(this.configDir, "config.toml")]);
    const out = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (!seeded.has(p)) out.push(p);
      }
    };
    walk(this.dir);
    return out;
  }

  remove() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An environment variable a test needs, with how to get it when it is missing. */
export function required(name, how) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: ${how} (cargo xtask test sets it)`);
  return v;
}

/** A real `tally serve` on 127.0.0.1:0 with the example's schema, in a temporary data dir. */
export class Collector {
  static async start() {
    const bin = required("TALLY_BIN", "point it at the tally binary (cargo build --release -p tally-cli; target/release/tally)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-collector-"));
    const child = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", path.join(dir, "data"), "--schemas", path.join(root, "examples", "schemas")], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH, RUST_LOG: "warn" },
    });
    const url = await new Promise((ok, fail) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error(`tally serve printed no address: ${out}`)), 30000);
      child.stdout.on("data", (d) => {
        out += d;
        const m = /tally collector listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
      child.on("exit", (code) => fail(new Error(`tally serve exited (${code}): ${out}`)));
    });
    const c = new Collector();
    c.child = child;
    c.dir = dir;
    c.url = url;
    return c;
  }

  async stop() {
    this.child.kill("SIGTERM");
    await new Promise((ok) => this.child.once("exit", ok));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Event ids in a sent-log, with the collector's counts per batch. */
export function sentLog(dataDir) {
  const file = path.join(dataDir, "sent.jsonl");
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}
