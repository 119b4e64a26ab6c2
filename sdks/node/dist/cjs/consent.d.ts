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
import type { Project } from "./project.js";
import { Vars } from "./vars.js";
/** The default organisation policy file. */
export declare const DEFAULT_POLICY_PATH = "/etc/tally/policy.toml";
/** What telemetry does: nothing (`off`), keep events on this machine (`local`), send them (`on`). */
export type Mode = "off" | "local" | "on";
/** Parses `off`, `local` or `on` (also `disabled`/`enabled`, any case); `null` otherwise. */
export declare function parseMode(s: string): Mode | null;
/** Which source decided the mode; `key` is the stable short name the Rust SDK uses. */
export type Source = {
    key: "policy";
    path: string;
} | {
    key: "do_not_track";
} | {
    key: "app_variable";
    name: string;
} | {
    key: "no_project_id";
} | {
    key: "project_manifest";
    path: string;
} | {
    key: "user_config";
    path: string;
} | {
    key: "user_config_unreadable";
    path: string;
} | {
    key: "author_default";
};
/** The source as a person reads it, e.g. `DO_NOT_TRACK` or `your choice in ~/.config/…`. */
export declare function describeSource(s: Source): string;
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
export declare function loadUserConfig(file: string): UserConfig;
/** Writes the user config atomically; `command` is named in the comment. */
export declare function saveUserConfig(file: string, config: UserConfig, command: string): void;
/** What the client knows about the project. */
export type ProjectInput = {
    given: true;
} | {
    found: Project;
} | null;
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
export declare function resolveConsent(i: ConsentInputs): Decision;
