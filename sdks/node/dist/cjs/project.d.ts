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
/** Which kind of manifest holds a project's id. */
export type ManifestKind = "telemetry-toml" | "cargo-toml" | "package-json";
/** What a project's manifest says about telemetry. */
export interface Project {
    /** The project id; `null` when the app's section has no valid, non-nil UUID. */
    id: string | null;
    /** `telemetryDisabled = true` in the app's section. */
    disabled: boolean;
    /** The manifest that was read. */
    manifest: string;
    kind: ManifestKind;
}
/** The manifest's path inside a project directory. */
export declare function manifestPath(kind: ManifestKind, dir: string, app: string): string;
/** A UUID in its hyphenated lower-case form; `null` for anything else or the nil UUID. */
export declare function parseUuid(value: unknown): string | null;
/** Reads one manifest: `null` when it exists but has no section for `app`. Throws when unreadable or malformed. */
export declare function readManifest(file: string, kind: ManifestKind, app: string): Project | null;
/**
 * Finds the project `start` belongs to: the nearest directory, from `start` upwards, with a
 * manifest that has a section for `app`. Unreadable or malformed files are skipped.
 */
export declare function findProject(start: string, app: string): Project | null;
/**
 * Gives the project in `dir` an id, for a tool that creates projects: returns the id
 * already there, or writes a new random UUID v4 into the manifest of `kind` and returns it.
 * `Cargo.toml` and `package.json` must exist; their other contents and formatting are kept
 * as they are. `.<app>/telemetry.toml` is created when missing. Throws with a message that
 * names the file when it cannot.
 */
export declare function createProjectId(dir: string, app: string, kind?: ManifestKind): string;
