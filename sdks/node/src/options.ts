/**
 * Every setting of a client, declared once with its default, and `resolve`, which turns
 * them into what a process knows before anything starts: the files, the project, the
 * consent decision. Reads files, writes none. The client, the `telemetry` command and the
 * controls all start here.
 */

import * as os from "node:os";
import * as path from "node:path";

import { Decision, Mode, resolveConsent, UserConfig } from "./consent.js";
import { ciVendor, Env } from "./facts.js";
import { findProject, parseUuid, Project } from "./project.js";
import { isName } from "./protocol.js";
import type { Transport } from "./transport.js";
import { appPrefix, flag, Vars } from "./vars.js";

/** How a tool configures its telemetry. Only `app` and `version` are required. */
export interface TelemetryOptions {
  /** The tool's name (1-64 characters of `[a-z0-9._-]`), the name its schema is registered under. */
  app: string;
  /** The tool's version. */
  version: string;
  /** The command users type (default: `app`), named by the notice, `telemetry status` and the config file. */
  command?: string;
  /** The prefix of the tool's variables: `<PREFIX>_TELEMETRY_DISABLED`, `_TELEMETRY_DEBUG`, `_ENV` (default: `app` upper-cased, `-`/`.` as `_`). */
  envPrefix?: string;
  /** The collector's base URL or full batch URL. Without one nothing is uploaded (on behaves like local). */
  endpoint?: string;
  /** The author's default when no other source decides (default `on`; `off` makes it opt-in). */
  defaultMode?: Mode;
  /** Where to look for the project manifest (default: the current directory and its parents). */
  projectDir?: string;
  /** The project id, for tools that keep it themselves; no manifest is read. */
  projectId?: string;
  /** The environment, when the tool knows it; otherwise `<PREFIX>_ENV`, `NODE_ENV`, … are read. */
  env?: Env;
  /** Adds `host.cpus` and `host.memory_gb` int properties to every event (declare them in the schema). */
  hostFacts?: boolean;
  /** Plugin and feature names sent as they are; any other name is sent as a salted hash. */
  knownPlugins?: Iterable<string>;
  /** Most events held in memory (default 1000); more are dropped with one warning. */
  queueCapacity?: number;
  /** Events per batch (default 100, at most 500). */
  batchSize?: number;
  /** How long the first queued event waits for others (default 1000 ms). */
  flushIntervalMs?: number;
  /** How long a batch posted without an answer seen waits before it is posted again (default 10 min). */
  resendAfterMs?: number;
  /**
   * Least time between two detached flushers of this tool's outbox (default 60 s): a short
   * command hands what it recorded to a flusher process at exit, unless one was started
   * within this time; then it waits in the outbox for the next. `0` starts one every run.
   */
  flushGapMs?: number;
  /** Connect timeout of one request (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Total timeout of one request (default 10000 ms). */
  totalTimeoutMs?: number;
  /** This tool's config directory (default `<config dir>/tally/<app>`, e.g. `~/.config/tally/<app>`). */
  configDir?: string;
  /** This tool's outbox directory (default `<local data dir>/tally/<app>`, e.g. `~/.local/share/tally/<app>`). */
  dataDir?: string;
  /** The organisation policy file (default: `TALLY_POLICY`, else `/etc/tally/policy.toml`). */
  policyPath?: string;
  /** The first-run notice, replacing the default text. */
  notice?: string;
  /** The environment variables to read (default `process.env`); tests pass a fixed map. */
  vars?: Vars;
  /** Delivers here instead of over HTTP (the test kit's in-memory sink). */
  transport?: Transport;
}

/** The files of one tool; `null` without a home directory. */
export interface Paths {
  userConfig: string | null;
  identity: string | null;
  /** The machine hash kept between runs (identity.ts). */
  machineCache: string | null;
  data: string | null;
}

/** What a process knows about its tool's telemetry before anything is started. */
export interface Resolved {
  app: string;
  command: string;
  prefix: string;
  decision: Decision;
  /** `<PREFIX>_TELEMETRY_DEBUG` is set. */
  debug: boolean;
  endpoint: string | null;
  project: Project | null;
  projectId: string | null;
  paths: Paths;
  ci: string | null;
  vars: Vars;
  /** The user config as consent read it (`null`: missing); absent when consent decided before reading it. */
  userConfig?: UserConfig | null;
}

/** The platform's config and local data directories, as the Rust `dirs` crate finds them. */
export function platformDirs(vars: Vars): { config: string | null; data: string | null } {
  const home = vars.HOME || (process.platform === "win32" ? vars.USERPROFILE : undefined) || safeHome();
  const abs = (p: string | undefined) => (p && path.isAbsolute(p) ? p : null);
  if (process.platform === "win32") {
    return { config: abs(vars.APPDATA), data: abs(vars.LOCALAPPDATA) };
  }
  if (!home) return { config: null, data: null };
  if (process.platform === "darwin") {
    const support = path.join(home, "Library", "Application Support");
    return { config: support, data: support };
  }
  return {
    config: abs(vars.XDG_CONFIG_HOME) ?? path.join(home, ".config"),
    data: abs(vars.XDG_DATA_HOME) ?? path.join(home, ".local", "share"),
  };
}

function safeHome(): string | undefined {
  try {
    return os.homedir() || undefined;
  } catch {
    return undefined;
  }
}

export function paths(o: TelemetryOptions, vars: Vars): Paths {
  const dirs = o.configDir && o.dataDir ? { config: null, data: null } : platformDirs(vars);
  const config = o.configDir ?? (dirs.config ? path.join(dirs.config, "tally", o.app) : null);
  const data = o.dataDir ?? (dirs.data ? path.join(dirs.data, "tally", o.app) : null);
  return {
    userConfig: config ? path.join(config, "config.toml") : null,
    identity: config ? path.join(config, "identity.toml") : null,
    machineCache: config ? path.join(config, "machine.cache") : null,
    data,
  };
}

/** Resolves consent for these options (see `consent.ts`). Reads files, writes none. */
export function resolve(o: TelemetryOptions): Resolved {
  const vars = o.vars ?? process.env;
  const prefix = o.envPrefix ?? appPrefix(o.app);
  const p = paths(o, vars);
  const givenId = o.projectId === undefined ? null : parseUuid(o.projectId);
  let project: Project | null = null;
  if (o.projectId === undefined) {
    let start = o.projectDir;
    if (start === undefined) {
      try {
        start = process.cwd();
      } catch {
        start = undefined;
      }
    }
    project = start === undefined ? null : findProject(start, o.app);
  }
  let userConfig: UserConfig | null | undefined;
  const decision: Decision =
    typeof o.app === "string" && isName(o.app)
      ? resolveConsent({
          app: o.app,
          envPrefix: prefix,
          vars,
          policyPath: o.policyPath,
          project: givenId ? { given: true } : project ? { found: project } : null,
          userConfig: p.userConfig ?? undefined,
          default: o.defaultMode ?? "on",
          onUserConfig: (c) => (userConfig = c),
        })
      : { mode: "off", source: { key: "author_default" } };
  return {
    app: o.app,
    command: o.command ?? o.app,
    prefix,
    decision,
    debug: flag(vars, `${prefix}_TELEMETRY_DEBUG`),
    endpoint: o.endpoint ?? null,
    project,
    projectId: givenId ?? project?.id ?? null,
    paths: p,
    ci: ciVendor(vars),
    vars,
    userConfig,
  };
}
