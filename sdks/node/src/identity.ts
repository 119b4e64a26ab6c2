/**
 * Machine identity: the per-tool machine hash, the random install id and the secret salt,
 * computed exactly as the Rust SDK computes them (a test asserts both give the same value
 * on one machine).
 *
 * The machine hash is HMAC-SHA256 keyed by the tool's name over the OS machine id, so two
 * tools on one machine send unrelated ids and neither can be joined to the raw id. The OS
 * id is read from files (Linux `/etc/machine-id`, `/var/lib/dbus/machine-id`; FreeBSD
 * `/etc/hostid`) or, on macOS, `IOPlatformUUID` from `ioreg` started directly (no shell)
 * and only when the first batch is built. Where none is readable (distroless containers,
 * Windows, as in the Rust SDK) a random install id kept in the user's config directory
 * takes its place. In CI every run of a vendor shares one id. The hostname is never used.
 */

import { childProcess } from "./lazy.js";
import * as fs from "node:fs";
import * as path from "node:path";
import { removeFile, writeAtomically } from "./files.js";

import { parseUuid } from "./project.js";
import { allIn, asciiSet } from "./protocol.js";
import { randomBytes, randomUuid } from "./random.js";
import { hex, hmacSha256, sha256 } from "./sha256.js";
import { parseToml, tomlString } from "./toml.js";

/** Where the machine hash comes from: `os`, `install_id`, `ci` or `ephemeral`. */
export type MachineKind = "os" | "install_id" | "ci" | "ephemeral";

/** The machine id a tool sends: a 64-hex-digit keyed hash, and where it comes from. */
export interface MachineId {
  hash: string;
  kind: MachineKind;
  /** The CI vendor, when `kind` is `ci`. */
  vendor?: string;
}

/** The random values kept per user and tool (`identity.toml` in the config dir). */
export interface LocalIdentity {
  /** Stands in for the machine id where the OS has none. */
  install_id: string;
  /** Keys the hashes of sensitive values; never leaves the machine. */
  salt: string;
  /** Set by `telemetry reset`: mixed into the machine hash so the reset changes it. */
  reset?: string;
}

export function randomIdentity(reset: boolean): LocalIdentity {
  const id: LocalIdentity = { install_id: randomUuid(), salt: randomBytes(32).toString("hex") };
  if (reset) id.reset = randomUuid();
  return id;
}

/** Reads the identity file; throws when missing (`ENOENT`) or malformed. */
export function loadIdentity(file: string): LocalIdentity {
  const t = parseToml(fs.readFileSync(file, "utf8"));
  const install = parseUuid(t.install_id);
  if (!install || typeof t.salt !== "string") throw new Error(`${file}: not an identity file`);
  const id: LocalIdentity = { install_id: install, salt: t.salt };
  if (t.reset !== undefined) {
    const reset = parseUuid(t.reset);
    if (!reset) throw new Error(`${file}: reset is not a UUID`);
    id.reset = reset;
  }
  return id;
}

/**
 * Writes the identity file; with `replace` an existing one is replaced, otherwise an
 * existing one wins (`EEXIST`): the file appears complete or not at all (hard link of a
 * written temporary file).
 */
export function writeIdentity(file: string, id: LocalIdentity, replace: boolean): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let text = "# Random values for this tool's telemetry. The salt never leaves this machine.\n";
  text += `install_id = ${tomlString(id.install_id)}\nsalt = ${tomlString(id.salt)}\n`;
  if (id.reset) text += `reset = ${tomlString(id.reset)}\n`;
  const tmp = `${file}.${process.pid}.${randomUuid()}.tmp`;
  fs.writeFileSync(tmp, text);
  try {
    if (replace) fs.renameSync(tmp, file);
    else fs.linkSync(tmp, file);
  } finally {
    removeFile(tmp);
  }
}

/** Reads the identity file, creating it when missing; two processes creating it at once agree on one. */
export function loadOrCreateIdentity(file: string): LocalIdentity {
  try {
    return loadIdentity(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const fresh = randomIdentity(false);
  try {
    writeIdentity(file, fresh, false);
    return fresh;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return loadIdentity(file);
    throw e;
  }
}

/** The salt's bytes (hex-decoded, or the text itself when it is not hex, as in Rust). */
export function saltBytes(id: LocalIdentity): Buffer {
  return /^([0-9a-fA-F]{2})*$/.test(id.salt) ? Buffer.from(id.salt, "hex") : Buffer.from(id.salt, "utf8");
}

/** HMAC-SHA256 of `message` keyed with `key`, hex. */
export function hmacHex(key: Buffer | string, message: Buffer | string): string {
  return hex(hmacSha256(key, message));
}

/** The hash a sensitive value is replaced with: 16 hex digits of HMAC(salt, value). */
export function hashSensitive(salt: Buffer, value: string): string {
  return hmacHex(salt, value).slice(0, 16);
}

/**
 * The machine id for `app`: the CI vendor's shared id, else the OS id, else the install id,
 * else (no identity could be stored) an ephemeral one.
 *
 * With `cache` (a file in the tool's config directory), the OS and install-id hashes are
 * kept there and reused while the hashed value is unchanged (see {@link cachedHash}).
 */
export function machineId(app: string, ci: string | null, identity: LocalIdentity | null, cache: string | null = null): MachineId {
  if (ci) return { hash: hmacHex(app, `ci:${ci}`), kind: "ci", vendor: ci };
  const reset = identity?.reset ? `\nreset:${identity.reset}` : "";
  const os = osMachineId();
  if (os !== null) return { hash: cachedHash(cache, app, `${os}${reset}`), kind: "os" };
  if (identity) return { hash: cachedHash(cache, app, `install:${identity.install_id}`), kind: "install_id" };
  return { hash: hmacHex(app, randomBytes(16)), kind: "ephemeral" };
}

const LOWER_HEX = asciiSet("0123456789abcdef");

/** Two 32-bit string hashes (FNV-1a and djb2 over UTF-16 units) as 16 hex digits: tells whether a cached hash is of this message. */
function check(message: string): string {
  let fnv = 0x811c9dc5;
  let djb = 5381;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    fnv = Math.imul(fnv ^ c, 0x01000193);
    djb = (Math.imul(djb, 33) + c) | 0;
  }
  return (fnv >>> 0).toString(16).padStart(8, "0") + (djb >>> 0).toString(16).padStart(8, "0");
}

/**
 * `hmacHex(app, message)`, kept in `cache` as `<check> <hash>`. The SDK's SHA-256 is plain
 * JavaScript (sha256.ts), and its first run in a process was the largest single cost of a
 * short command's telemetry (about 0.85 ms, docs/benchmarks.md); reading a line costs a
 * tenth of that. The check is a cheap non-cryptographic digest of the message (the raw OS
 * id): it adds nothing to what the kept hash already tells, which anyone can test a guessed
 * id against. A changed id (a home directory moved to another machine, `telemetry reset`)
 * fails the check and is hashed again. Reading or writing the cache never fails the caller.
 */
function cachedHash(cache: string | null, app: string, message: string): string {
  if (!cache) return hmacHex(app, message);
  const want = check(message);
  const line = readText(cache);
  if (line !== null && line.length >= 81 && line.startsWith(`${want} `)) {
    const hash = line.slice(17, 81);
    if (allIn(hash, LOWER_HEX)) return hash;
  }
  const hash = hmacHex(app, message);
  try {
    writeAtomically(cache, `${want} ${hash}\n`);
  } catch {
    // a cache only: the next run hashes again
  }
  return hash;
}

function firstLine(text: string): string {
  return text.split("\n")[0];
}

/** The value trimmed, unless it holds no letter and no digit but 0 (blank, all zeros): then `null`. */
function usable(s: string): string | null {
  const t = s.trim();
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if ((c >= 49 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return t;
  }
  return null;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/** The raw OS machine id, trimmed; `null` when there is none (or only a blank/zero one). */
export function osMachineId(): string | null {
  if (process.platform === "darwin") {
    const id = macosPlatformUuid();
    if (id !== null) return usable(id);
  }
  const files =
    process.platform === "freebsd"
      ? ["/etc/hostid"]
      : process.platform === "win32"
        ? []
        : ["/etc/machine-id", "/var/lib/dbus/machine-id"];
  for (const f of files) {
    const text = readText(f);
    const id = text === null ? null : usable(firstLine(text));
    if (id !== null) return id;
  }
  return null;
}

/** `IOPlatformUUID` from `ioreg`, started directly (no shell). */
function macosPlatformUuid(): string | null {
  try {
    // Loaded here, on macOS only: other systems never pay for `node:child_process`.
    const out = childProcess().execFileSync("/usr/sbin/ioreg", ["-rd1", "-c", "IOPlatformExpertDevice"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2000,
    });
    const line = out.split("\n").find((l) => l.includes("IOPlatformUUID"));
    const value = line?.split("=")[1];
    return value === undefined ? null : value.replace(/["\s]/g, "");
  } catch {
    return null;
  }
}

/**
 * Exactly what npm's `node-machine-id` (1.1.12) returns from `machineIdSync()`: the hex
 * SHA-256 of the machine id as that package reads it, for tools migrating from it. On Linux
 * the first line of `/var/lib/dbus/machine-id`, or of `/etc/machine-id` when the first is
 * missing, or else the hostname; whitespace removed, lower-cased. On FreeBSD `/etc/hostid`,
 * on macOS `IOPlatformUUID`. `null` where it cannot be read without a shell (Windows).
 *
 * Unlike {@link machineId} this value is not keyed: every tool on the machine sees the same
 * one. Use it only for compatibility.
 */
export function nodeMachineId(): string | null {
  const raw = nodeMachineIdOriginal();
  return raw === null ? null : hex(sha256(raw));
}

/** The value `node-machine-id` hashes (`machineIdSync(true)`). */
export function nodeMachineIdOriginal(): string | null {
  let raw: string | null;
  if (process.platform === "linux") {
    // `( cat /var/lib/dbus/machine-id /etc/machine-id 2> /dev/null || hostname ) | head -n 1`
    const cat = ["/var/lib/dbus/machine-id", "/etc/machine-id"].map(readText).filter((t) => t !== null).join("");
    raw = cat !== "" ? cat : readText("/proc/sys/kernel/hostname");
  } else if (process.platform === "freebsd") {
    raw = readText("/etc/hostid");
  } else if (process.platform === "darwin") {
    raw = macosPlatformUuid();
  } else {
    raw = null;
  }
  if (raw === null) return null;
  return firstLine(raw).replace(/\s/g, "").toLowerCase();
}
