/**
 * The subset of TOML the SDK's own small files use (the policy file, the user config, the
 * identity file, `.<app>/telemetry.toml`) and the one table it reads from `Cargo.toml`.
 *
 * No runtime dependency may be added, so this is hand-written and deliberately small:
 * comments, `[table.headers]`, and `key = value` with strings (basic and literal),
 * booleans, numbers and one-line arrays of those. {@link parseToml} refuses anything else,
 * as the Rust SDK's `toml` crate refuses a malformed file (a policy file that does not
 * parse means off). {@link readTomlTable} reads a single table leniently, skipping the
 * lines of every other table, so a `Cargo.toml` full of inline tables and multi-line
 * arrays still yields its `[package.metadata.<app>]`.
 */

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {}

const BARE_KEY = /^[A-Za-z0-9_-]+/;

/** Splits a dotted key (`a."b.c".d`) into its parts; `null` when malformed. */
function parseKeyPath(text: string): string[] | null {
  const parts: string[] = [];
  let s = text.trim();
  for (;;) {
    let part: string;
    if (s.startsWith('"') || s.startsWith("'")) {
      const r = parseString(s);
      if (!r) return null;
      part = r.value;
      s = r.rest.trimStart();
    } else {
      const m = BARE_KEY.exec(s);
      if (!m) return null;
      part = m[0];
      s = s.slice(part.length).trimStart();
    }
    parts.push(part);
    if (s === "") return parts;
    if (!s.startsWith(".")) return null;
    s = s.slice(1).trimStart();
  }
}

/** A basic (`"…"`) or literal (`'…'`) string at the start of `s`. */
function parseString(s: string): { value: string; rest: string } | null {
  const quote = s[0];
  if (quote === "'") {
    const end = s.indexOf("'", 1);
    if (end < 0) return null;
    return { value: s.slice(1, end), rest: s.slice(end + 1) };
  }
  if (quote !== '"') return null;
  // Most strings have no escape: one slice, not a string built character by character.
  const close = s.indexOf('"', 1);
  if (close > 0 && s.lastIndexOf("\\", close) < 1) return { value: s.slice(1, close), rest: s.slice(close + 1) };
  let out = "";
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (c === '"') return { value: out, rest: s.slice(i + 1) };
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = s[++i];
    const simple: Record<string, string> = { b: "\b", t: "\t", n: "\n", f: "\f", r: "\r", '"': '"', "\\": "\\" };
    if (e !== undefined && e in simple) {
      out += simple[e];
    } else if (e === "u" || e === "U") {
      const len = e === "u" ? 4 : 8;
      const hex = s.slice(i + 1, i + 1 + len);
      if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== len) return null;
      out += String.fromCodePoint(parseInt(hex, 16));
      i += len;
    } else {
      return null;
    }
  }
  return null;
}

/** A value at the start of `s`, and what follows it. */
function parseValue(s: string): { value: TomlValue; rest: string } | null {
  if (s.startsWith('"') || s.startsWith("'")) return parseString(s);
  if (s.startsWith("[")) {
    const items: TomlValue[] = [];
    let rest = s.slice(1).trimStart();
    while (!rest.startsWith("]")) {
      const item = parseValue(rest);
      if (!item) return null;
      items.push(item.value);
      rest = item.rest.trimStart();
      if (rest.startsWith(",")) rest = rest.slice(1).trimStart();
      else if (!rest.startsWith("]")) return null;
    }
    return { value: items, rest: rest.slice(1) };
  }
  const m = /^(true|false|[+-]?(?:\d[\d_]*)(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)(?=[\s,\]#]|$)/.exec(s);
  if (!m) return null;
  const word = m[1];
  const value = word === "true" ? true : word === "false" ? false : Number(word.replace(/_/g, ""));
  return { value, rest: s.slice(word.length) };
}

function tableAt(root: TomlTable, path: string[]): TomlTable | null {
  let t = root;
  for (const p of path) {
    const next = t[p];
    if (next === undefined) t = t[p] = {};
    else if (typeof next === "object" && !Array.isArray(next)) t = next;
    else return null;
  }
  return t;
}

/** One line: a header's path, a key/value, or nothing (blank or comment). */
type Line = { header: string[] } | { key: string[]; value: TomlValue } | null;

function parseLine(raw: string): Line | undefined {
  const line = raw.trim();
  if (line === "" || line.startsWith("#")) return null;
  if (line.startsWith("[")) {
    const m = /^\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$/.exec(line);
    const path = m ? parseKeyPath(m[1]) : null;
    return path ? { header: path } : undefined;
  }
  const eq = findEquals(line);
  if (eq < 0) return undefined;
  const key = parseKeyPath(line.slice(0, eq));
  const value = parseValue(line.slice(eq + 1).trimStart());
  if (!key || !value) return undefined;
  const rest = value.rest.trim();
  if (rest !== "" && !rest.startsWith("#")) return undefined;
  return { key, value: value.value };
}

/** The `=` that ends the key (not one inside a quoted key). */
function findEquals(line: string): number {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "=") {
      return i;
    }
  }
  return -1;
}

/** Parses a whole file of the supported subset; throws {@link TomlError} on anything else. */
export function parseToml(text: string): TomlTable {
  const root: TomlTable = {};
  let current: TomlTable = root;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const parsed = parseLine(lines[n]);
    if (parsed === undefined) throw new TomlError(`line ${n + 1}: not understood: ${lines[n].trim()}`);
    if (parsed === null) continue;
    if ("header" in parsed) {
      const t = tableAt(root, parsed.header);
      if (!t) throw new TomlError(`line ${n + 1}: ${parsed.header.join(".")} is not a table`);
      current = t;
      continue;
    }
    const parent = tableAt(current, parsed.key.slice(0, -1));
    const last = parsed.key[parsed.key.length - 1];
    if (!parent || last in parent) throw new TomlError(`line ${n + 1}: duplicate key ${parsed.key.join(".")}`);
    parent[last] = parsed.value;
  }
  return root;
}

/**
 * The table at `path` (e.g. `["package", "metadata", "mytool"]`) of a file that may hold
 * TOML beyond the supported subset elsewhere; `undefined` when the file has no such header.
 */
export function readTomlTable(text: string, path: string[]): TomlTable | undefined {
  let inside = false;
  let found: TomlTable | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const trimmed = raw.trim();
    if (trimmed.startsWith("[") && /\]\s*(#.*)?$/.test(trimmed)) {
      const parsed = parseLine(raw);
      if (parsed && "header" in parsed) {
        inside = parsed.header.length === path.length && parsed.header.every((p, i) => p === path[i]);
        if (inside) found = found ?? {};
        continue;
      }
    }
    if (!inside || !found) continue;
    const parsed = parseLine(raw);
    if (parsed && "key" in parsed && parsed.key.length === 1) found[parsed.key[0]] = parsed.value;
  }
  return found;
}

/** A TOML string literal. */
export function tomlString(s: string): string {
  return JSON.stringify(s).replace(/\u007f/g, "\\u007F");
}
