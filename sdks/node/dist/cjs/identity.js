"use strict";
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
Object.defineProperty(exports, "__esModule", { value: true });
exports.randomIdentity = randomIdentity;
exports.loadIdentity = loadIdentity;
exports.writeIdentity = writeIdentity;
exports.loadOrCreateIdentity = loadOrCreateIdentity;
exports.saltBytes = saltBytes;
exports.hmacHex = hmacHex;
exports.hashSensitive = hashSensitive;
exports.machineId = machineId;
exports.osMachineId = osMachineId;
exports.nodeMachineId = nodeMachineId;
exports.nodeMachineIdOriginal = nodeMachineIdOriginal;
const lazy_js_1 = require("./lazy.js");
const fs = require("node:fs");
const path = require("node:path");
const files_js_1 = require("./files.js");
const project_js_1 = require("./project.js");
const protocol_js_1 = require("./protocol.js");
const random_js_1 = require("./random.js");
const sha256_js_1 = require("./sha256.js");
const toml_js_1 = require("./toml.js");
function randomIdentity(reset) {
    const id = { install_id: (0, random_js_1.randomUuid)(), salt: (0, random_js_1.randomBytes)(32).toString("hex") };
    if (reset)
        id.reset = (0, random_js_1.randomUuid)();
    return id;
}
/** Reads the identity file; throws when missing (`ENOENT`) or malformed. */
function loadIdentity(file) {
    const t = (0, toml_js_1.parseToml)(fs.readFileSync(file, "utf8"));
    const install = (0, project_js_1.parseUuid)(t.install_id);
    if (!install || typeof t.salt !== "string")
        throw new Error(`${file}: not an identity file`);
    const id = { install_id: install, salt: t.salt };
    if (t.reset !== undefined) {
        const reset = (0, project_js_1.parseUuid)(t.reset);
        if (!reset)
            throw new Error(`${file}: reset is not a UUID`);
        id.reset = reset;
    }
    return id;
}
/**
 * Writes the identity file; with `replace` an existing one is replaced, otherwise an
 * existing one wins (`EEXIST`): the file appears complete or not at all (hard link of a
 * written temporary file).
 */
function writeIdentity(file, id, replace) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    let text = "# Random values for this tool's telemetry. The salt never leaves this machine.\n";
    text += `install_id = ${(0, toml_js_1.tomlString)(id.install_id)}\nsalt = ${(0, toml_js_1.tomlString)(id.salt)}\n`;
    if (id.reset)
        text += `reset = ${(0, toml_js_1.tomlString)(id.reset)}\n`;
    const tmp = `${file}.${process.pid}.${(0, random_js_1.randomUuid)()}.tmp`;
    fs.writeFileSync(tmp, text);
    try {
        if (replace)
            fs.renameSync(tmp, file);
        else
            fs.linkSync(tmp, file);
    }
    finally {
        (0, files_js_1.removeFile)(tmp);
    }
}
/** Reads the identity file, creating it when missing; two processes creating it at once agree on one. */
function loadOrCreateIdentity(file) {
    try {
        return loadIdentity(file);
    }
    catch (e) {
        if (e.code !== "ENOENT")
            throw e;
    }
    const fresh = randomIdentity(false);
    try {
        writeIdentity(file, fresh, false);
        return fresh;
    }
    catch (e) {
        if (e.code === "EEXIST")
            return loadIdentity(file);
        throw e;
    }
}
/** The salt's bytes (hex-decoded, or the text itself when it is not hex, as in Rust). */
function saltBytes(id) {
    return /^([0-9a-fA-F]{2})*$/.test(id.salt) ? Buffer.from(id.salt, "hex") : Buffer.from(id.salt, "utf8");
}
/** HMAC-SHA256 of `message` keyed with `key`, hex. */
function hmacHex(key, message) {
    return (0, sha256_js_1.hex)((0, sha256_js_1.hmacSha256)(key, message));
}
/** The hash a sensitive value is replaced with: 16 hex digits of HMAC(salt, value). */
function hashSensitive(salt, value) {
    return hmacHex(salt, value).slice(0, 16);
}
/**
 * The machine id for `app`: the CI vendor's shared id, else the OS id, else the install id,
 * else (no identity could be stored) an ephemeral one.
 *
 * With `cache` (a file in the tool's config directory), the OS and install-id hashes are
 * kept there and reused while the hashed value is unchanged (see {@link cachedHash}).
 */
function machineId(app, ci, identity, cache = null) {
    if (ci)
        return { hash: hmacHex(app, `ci:${ci}`), kind: "ci", vendor: ci };
    const reset = identity?.reset ? `\nreset:${identity.reset}` : "";
    const os = osMachineId();
    if (os !== null)
        return { hash: cachedHash(cache, app, `${os}${reset}`), kind: "os" };
    if (identity)
        return { hash: cachedHash(cache, app, `install:${identity.install_id}`), kind: "install_id" };
    return { hash: hmacHex(app, (0, random_js_1.randomBytes)(16)), kind: "ephemeral" };
}
const LOWER_HEX = (0, protocol_js_1.asciiSet)("0123456789abcdef");
/** Two 32-bit string hashes (FNV-1a and djb2 over UTF-16 units) as 16 hex digits: tells whether a cached hash is of this message. */
function check(message) {
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
function cachedHash(cache, app, message) {
    if (!cache)
        return hmacHex(app, message);
    const want = check(message);
    const line = readText(cache);
    if (line !== null && line.length >= 81 && line.startsWith(`${want} `)) {
        const hash = line.slice(17, 81);
        if ((0, protocol_js_1.allIn)(hash, LOWER_HEX))
            return hash;
    }
    const hash = hmacHex(app, message);
    try {
        (0, files_js_1.writeAtomically)(cache, `${want} ${hash}\n`);
    }
    catch {
        // a cache only: the next run hashes again
    }
    return hash;
}
function firstLine(text) {
    return text.split("\n")[0];
}
/** The value trimmed, unless it holds no letter and no digit but 0 (blank, all zeros): then `null`. */
function usable(s) {
    const t = s.trim();
    for (let i = 0; i < t.length; i++) {
        const c = t.charCodeAt(i);
        if ((c >= 49 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122))
            return t;
    }
    return null;
}
function readText(file) {
    try {
        return fs.readFileSync(file, "utf8");
    }
    catch {
        return null;
    }
}
/** The raw OS machine id, trimmed; `null` when there is none (or only a blank/zero one). */
function osMachineId() {
    if (process.platform === "darwin") {
        const id = macosPlatformUuid();
        if (id !== null)
            return usable(id);
    }
    const files = process.platform === "freebsd"
        ? ["/etc/hostid"]
        : process.platform === "win32"
            ? []
            : ["/etc/machine-id", "/var/lib/dbus/machine-id"];
    for (const f of files) {
        const text = readText(f);
        const id = text === null ? null : usable(firstLine(text));
        if (id !== null)
            return id;
    }
    return null;
}
/** `IOPlatformUUID` from `ioreg`, started directly (no shell). */
function macosPlatformUuid() {
    try {
        // Loaded here, on macOS only: other systems never pay for `node:child_process`.
        const out = (0, lazy_js_1.childProcess)().execFileSync("/usr/sbin/ioreg", ["-rd1", "-c", "IOPlatformExpertDevice"], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "ignore"],
            timeout: 2000,
        });
        const line = out.split("\n").find((l) => l.includes("IOPlatformUUID"));
        const value = line?.split("=")[1];
        return value === undefined ? null : value.replace(/["\s]/g, "");
    }
    catch {
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
function nodeMachineId() {
    const raw = nodeMachineIdOriginal();
    return raw === null ? null : (0, sha256_js_1.hex)((0, sha256_js_1.sha256)(raw));
}
/** The value `node-machine-id` hashes (`machineIdSync(true)`). */
function nodeMachineIdOriginal() {
    let raw;
    if (process.platform === "linux") {
        // `( cat /var/lib/dbus/machine-id /etc/machine-id 2> /dev/null || hostname ) | head -n 1`
        const cat = ["/var/lib/dbus/machine-id", "/etc/machine-id"].map(readText).filter((t) => t !== null).join("");
        raw = cat !== "" ? cat : readText("/proc/sys/kernel/hostname");
    }
    else if (process.platform === "freebsd") {
        raw = readText("/etc/hostid");
    }
    else if (process.platform === "darwin") {
        raw = macosPlatformUuid();
    }
    else {
        raw = null;
    }
    if (raw === null)
        return null;
    return firstLine(raw).replace(/\s/g, "").toLowerCase();
}
