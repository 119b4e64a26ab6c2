"use strict";
/**
 * The project id: a random UUID v4 kept in the project's own manifest.
 *
 * A project takes part in telemetry only while its manifest carries the id, so deleting it
 * (or never creating it) opts the project out. Three places are read, nearest directory
 * first, and in each directory in this order (the Rust SDK's order):
 *
 * | file | where the id is |
 * |---|---|
 * | `.<app>/telemetry.toml` | `uuid = "…"` |
 * | `Cargo.toml` | `[package.metadata.<app>] uuid = "…"` (or `[workspace.metadata.<app>]`) |
 * | `package.json` | `"<app>": { "uuid": "…" }` |
 *
 * The same table may say `telemetryDisabled = true` (also `telemetry_disabled`,
 * `telemetry-disabled`), which switches telemetry off for everyone on the project. The
 * first file that has a section for the app decides, even when that section has no id.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.manifestPath = manifestPath;
exports.parseUuid = parseUuid;
exports.readManifest = readManifest;
exports.findProject = findProject;
exports.createProjectId = createProjectId;
const fs = require("node:fs");
const path = require("node:path");
const files_js_1 = require("./files.js");
const random_js_1 = require("./random.js");
const toml_js_1 = require("./toml.js");
const KINDS = ["telemetry-toml", "cargo-toml", "package-json"];
/** The manifest's path inside a project directory. */
function manifestPath(kind, dir, app) {
    switch (kind) {
        case "telemetry-toml":
            return path.join(dir, `.${app}`, "telemetry.toml");
        case "cargo-toml":
            return path.join(dir, "Cargo.toml");
        case "package-json":
            return path.join(dir, "package.json");
    }
}
const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
/** A UUID in its hyphenated lower-case form; `null` for anything else or the nil UUID. */
function parseUuid(value) {
    if (typeof value !== "string")
        return null;
    let s = value.trim();
    if (s.startsWith("{") && s.endsWith("}"))
        s = s.slice(1, -1);
    if (s.toLowerCase().startsWith("urn:uuid:"))
        s = s.slice(9);
    if (!UUID.test(s))
        return null;
    const hex = s.replace(/-/g, "").toLowerCase();
    if (/^0+$/.test(hex))
        return null;
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
function isTrue(v) {
    return v === true || v === "true" || v === "1";
}
/** The app's section of one manifest's text; `undefined` when it has none. Throws when malformed. */
function section(text, kind, app) {
    switch (kind) {
        case "telemetry-toml":
            return (0, toml_js_1.parseToml)(text);
        case "cargo-toml":
            return (0, toml_js_1.readTomlTable)(text, ["package", "metadata", app]) ?? (0, toml_js_1.readTomlTable)(text, ["workspace", "metadata", app]);
        case "package-json": {
            const doc = JSON.parse(text);
            const s = doc && typeof doc === "object" ? doc[app] : undefined;
            return s && typeof s === "object" && !Array.isArray(s) ? s : undefined;
        }
    }
}
/** Reads one manifest: `null` when it exists but has no section for `app`. Throws when unreadable or malformed. */
function readManifest(file, kind, app) {
    const s = section(fs.readFileSync(file, "utf8"), kind, app);
    if (!s)
        return null;
    return {
        id: parseUuid(s.uuid),
        disabled: ["telemetryDisabled", "telemetry_disabled", "telemetry-disabled"].some((k) => isTrue(s[k])),
        manifest: file,
        kind,
    };
}
/**
 * Finds the project `start` belongs to: the nearest directory, from `start` upwards, with a
 * manifest that has a section for `app`. Unreadable or malformed files are skipped.
 */
function findProject(start, app) {
    let dir = path.resolve(start);
    for (;;) {
        for (const kind of KINDS) {
            try {
                const p = readManifest(manifestPath(kind, dir, app), kind, app);
                if (p)
                    return p;
            }
            catch {
                // missing, unreadable or malformed: the next file
            }
        }
        const parent = path.dirname(dir);
        if (parent === dir)
            return null;
        dir = parent;
    }
}
/**
 * Gives the project in `dir` an id, for a tool that creates projects: returns the id
 * already there, or writes a new random UUID v4 into the manifest of `kind` and returns it.
 * `Cargo.toml` and `package.json` must exist; their other contents and formatting are kept
 * as they are. `.<app>/telemetry.toml` is created when missing. Throws with a message that
 * names the file when it cannot.
 */
function createProjectId(dir, app, kind = "package-json") {
    const file = manifestPath(kind, dir, app);
    try {
        const existing = readManifest(file, kind, app);
        if (existing?.id)
            return existing.id;
    }
    catch {
        // missing or malformed: handled below
    }
    const id = (0, random_js_1.randomUuid)();
    let text;
    if (kind === "telemetry-toml") {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        let old = "";
        try {
            old = fs.readFileSync(file, "utf8");
        }
        catch {
            // a new file
        }
        const kept = old
            .split(/\r?\n/)
            .filter((l) => l !== "" && !l.trimStart().startsWith("uuid"))
            .map((l) => `${l}\n`)
            .join("");
        text = `# The project's telemetry id. Delete this line to opt the project out.\nuuid = "${id}"\n${kept}`;
    }
    else if (kind === "cargo-toml") {
        text = insertCargo(fs.readFileSync(file, "utf8"), app, id);
    }
    else {
        text = insertPackageJson(fs.readFileSync(file, "utf8"), app, id, file);
    }
    const tmp = `${file}.tally-${process.pid}.tmp`;
    fs.writeFileSync(tmp, text);
    // Never leave a manifest that does not parse or lacks the id.
    let ok = false;
    try {
        ok = readManifest(tmp, kind, app)?.id === id;
    }
    catch {
        ok = false;
    }
    if (!ok) {
        (0, files_js_1.removeFile)(tmp);
        throw new Error(`could not add a ${app} uuid to ${file}; add it by hand`);
    }
    fs.renameSync(tmp, file);
    return id;
}
function insertCargo(text, app, id) {
    const header = `[package.metadata.${app}]`;
    const line = `uuid = "${id}"`;
    const pos = text.indexOf(header);
    if (pos >= 0) {
        const after = pos + header.length;
        const nl = text.indexOf("\n", after);
        const eol = nl < 0 ? text.length : nl + 1;
        let out = text.slice(0, eol);
        if (!out.endsWith("\n"))
            out += "\n";
        return `${out}${line}\n${text.slice(eol)}`;
    }
    let out = text;
    if (out !== "" && !out.endsWith("\n"))
        out += "\n";
    return `${out}\n${header}\n${line}\n`;
}
function insertPackageJson(text, app, id, file) {
    const doc = JSON.parse(text);
    if (!doc || typeof doc !== "object" || Array.isArray(doc))
        throw new Error(`${file} is not a JSON object`);
    const second = text.split("\n")[1] ?? "";
    const indent = second.slice(0, second.length - second.trimStart().length) || "  ";
    const key = JSON.stringify(app);
    const current = doc[app];
    if (current && typeof current === "object" && !Array.isArray(current)) {
        // `"app": {` exists: put the id first in it.
        const re = new RegExp(`${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*:\\s*\\{`);
        const m = re.exec(text);
        if (!m)
            throw new Error(`cannot find the ${app} section in ${file}`);
        const end = m.index + m[0].length;
        const rest = text.slice(end).trimStart();
        const sep = rest.startsWith("}") ? "" : ",";
        return `${text.slice(0, end)}"uuid": "${id}"${sep} ${text.slice(end).replace(/^[ \t]+/, "")}`;
    }
    const close = text.lastIndexOf("}");
    const before = text.slice(0, close).trimEnd();
    const sep = before.endsWith("{") ? "" : ",";
    return `${before}${sep}\n${indent}${key}: {\n${indent}${indent}"uuid": "${id}"\n${indent}}\n${text.slice(close)}`;
}
