/**
 * Consent: whether telemetry is off, local or on for this process, and who decided.
 *
 * Resolved once per process; the first source that has an opinion wins (the Rust SDK's
 * order, see docs/sdk.md):
 *
 * 1. the organisation policy file (`/etc/tally/policy.toml`, or the file named by
 *    `TALLY_POLICY`), which can restrict telemetry (`off`, `local`) but never force it on;
 * 2. `DO_NOT_TRACK`, then the tool's own `<APP>_TELEMETRY_DISABLED`;
 * 3. the project manifest: no project id means off, `telemetryDisabled = true` means off;
 * 4. the user's choice (`telemetry enable|disable|local`), kept in the user config file;
 * 5. the tool author's default.
 */

import * as fs from "node:fs";
import * as path from "node:path";

import { writeAtomically } from "./files.js";
import type { Project } from "./project.js";
import { parseToml, TomlTable, tomlString } from "./toml.js";
import { flag, Vars } from "./vars.js";

/** The default organisation policy file. */
export const DEFAULT_POLICY_PATH = "/etc/tally/policy.toml";

/** What telemetry does: nothing (`off`), keep events on this machine (`local`), send them (`on`). */
export type Mode = "off" | "local" | "on";

/** Parses `off`, `local` or `on` (also `disabled`/`enabled`, any case); `null` otherwise. */
export function parseMode(s: string): Mode | null {
  switch (s.trim().toLowerCase()) {
    case "off":
    case "disabled":
    case "disable":
      return "off";
    case "local":
      return "local";
    case "on":
    case "enabled":
    case "enable":
      return "on";
    default:
      return null;
  }
}

/** Which source decided the mode; `key` is the stable short name the Rust SDK uses. */
export type Source =
  | { key: "policy"; path: string }
  | { key: "do_not_track" }
  | { key: "app_variable"; name: string }
  | { key: "no_project_id" }
  | { key: "project_manifest"; path: string }
  | { key: "user_config"; path: string }
  | { key: "user_config_unreadable"; path: string }
  | { key: "author_default" };

/** The source as a person reads it, e.g. `DO_NOT_TRACK` or `your choice in ~/.config/…`. */
export function describeSource(s: Source): string {
  switch (s.key) {
    case "policy":
      return `organisation policy ${s.path}`;
    case "do_not_track":
      return "DO_NOT_TRACK";
    case "app_variable":
      return s.name;
    case "no_project_id":
      return "no project id in the project's manifest";
    case "project_manifest":
      return `telemetryDisabled in ${s.path}`;
    case "user_config":
      return `your choice in ${s.path}`;
    case "user_config_unreadable":
      return `${s.path} cannot be read (fix or delete it; until then telemetry is off)`;
    case "author_default":
      return "the tool's default";
  }
}

/** The resolved consent: the mode and the source that decided it. */
export interface Decision {
  mode: Mode;
  source: Source;
}

/** The user config file (`<config dir>/tally/<app>/config.toml`). */
export interface UserConfig {
  /** The user's choice, when they made one. */
  telemetry?: Mode;
  /** The first-run notice was shown on this machine. */
  notice_shown: boolean;
}

/** Reads the user config; throws `ENOENT` when missing and a plain error when malformed. */
export function loadUserConfig(file: string): UserConfig {
  const t = parseToml(fs.readFileSync(file, "utf8"));
  const config: UserConfig = { notice_shown: false };
  if (t.telemetry !== undefined) {
    // Only the exact wire names, as serde reads them.
    if (t.telemetry !== "off" && t.telemetry !== "local" && t.telemetry !== "on") {
      throw new Error(`${file}: telemetry must be "off", "local" or "on"`);
    }
    config.telemetry = t.telemetry;
  }
  if (t.notice_shown !== undefined) {
    if (typeof t.notice_shown !== "boolean") throw new Error(`${file}: notice_shown must be true or false`);
    config.notice_shown = t.notice_shown;
  }
  return config;
}

/** Writes the user config atomically; `command` is named in the comment. */
export function saveUserConfig(file: string, config: UserConfig, command: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let text = `# Telemetry settings for ${command}; change them with \`${command} telemetry enable|disable|local\`.\n`;
  if (config.telemetry) text += `telemetry = ${tomlString(config.telemetry)}\n`;
  text += `notice_shown = ${config.notice_shown}\n`;
  writeAtomically(file, text);
}

/** What the client knows about the project. */
export type ProjectInput = { given: true } | { found: Project } | null;

/** Everything consent looks at. */
export interface ConsentInputs {
  app: string;
  /** The prefix of the tool's own variables (`<PREFIX>_TELEMETRY_DISABLED`). */
  envPrefix: string;
  vars: Vars;
  /** The policy file; `undefined` means the default rule (`TALLY_POLICY` or the default path). */
  policyPath?: string;
  project: ProjectInput;
  userConfig?: string;
  default: Mode;
  /** Told what the user config held when consent read it (`null`: there is none), so that the caller need not read it again. */
  onUserConfig?: (config: UserConfig | null) => void;
}

/** Resolves consent, first match wins (see the module docs). Reads files, writes none. */
export function resolveConsent(i: ConsentInputs): Decision {
  const p = policy(i);
  if (p) return p;
  if (flag(i.vars, "DO_NOT_TRACK")) return { mode: "off", source: { key: "do_not_track" } };
  const name = `${i.envPrefix}_TELEMETRY_DISABLED`;
  if (flag(i.vars, name)) return { mode: "off", source: { key: "app_variable", name } };
  if (i.project === null) return { mode: "off", source: { key: "no_project_id" } };
  if ("found" in i.project) {
    if (i.project.found.disabled) {
      return { mode: "off", source: { key: "project_manifest", path: i.project.found.manifest } };
    }
    if (!i.project.found.id) return { mode: "off", source: { key: "no_project_id" } };
  }
  if (i.userConfig) {
    try {
      const c = loadUserConfig(i.userConfig);
      i.onUserConfig?.(c);
      if (c.telemetry) return { mode: c.telemetry, source: { key: "user_config", path: i.userConfig } };
    } catch (e) {
      // A config file we cannot read may hold a "disable": fail closed.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        return { mode: "off", source: { key: "user_config_unreadable", path: i.userConfig } };
      }
      i.onUserConfig?.(null);
    }
  }
  return { mode: i.default, source: { key: "author_default" } };
}

/**
 * The policy's decision, if it has one. A policy file named by `TALLY_POLICY` that is
 * missing, and any policy file that cannot be read or parsed, means off.
 */
function policy(i: ConsentInputs): Decision | null {
  let file: string;
  let named = true;
  const fromVar = i.vars.TALLY_POLICY?.trim();
  if (i.policyPath !== undefined) file = i.policyPath;
  else if (fromVar) file = fromVar;
  else {
    file = DEFAULT_POLICY_PATH;
    named = false;
  }
  const off: Decision = { mode: "off", source: { key: "policy", path: file } };
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" && !named ? null : off;
  }
  let value: string | undefined;
  try {
    value = policyValue(parseToml(text), i.app);
  } catch {
    return off;
  }
  if (value === undefined) return null;
  const v = value.trim().toLowerCase();
  if (v === "allow" || v === "on" || v === "default") return null;
  if (v === "local") return { mode: "local", source: { key: "policy", path: file } };
  // "off" and anything the policy's author mistyped.
  return off;
}

/** The app's value in a policy file (its `[apps.<app>]` line, else the global one); throws on unknown fields. */
function policyValue(t: TomlTable, app: string): string | undefined {
  const str = (v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new Error("telemetry must be a string");
    return v;
  };
  for (const k of Object.keys(t)) if (k !== "telemetry" && k !== "apps") throw new Error(`unknown field ${k}`);
  const apps = t.apps ?? {};
  if (typeof apps !== "object" || Array.isArray(apps)) throw new Error("apps must be a table");
  for (const [name, a] of Object.entries(apps)) {
    if (typeof a !== "object" || Array.isArray(a)) throw new Error(`apps.${name} must be a table`);
    for (const k of Object.keys(a)) if (k !== "telemetry") throw new Error(`unknown field apps.${name}.${k}`);
  }
  const own = (apps as TomlTable)[app] as TomlTable | undefined;
  return str(own?.telemetry) ?? str(t.telemetry);
}
