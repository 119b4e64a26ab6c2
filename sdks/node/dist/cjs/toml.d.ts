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
export declare class TomlError extends Error {
}
/** Parses a whole file of the supported subset; throws {@link TomlError} on anything else. */
export declare function parseToml(text: string): TomlTable;
/**
 * The table at `path` (e.g. `["package", "metadata", "mytool"]`) of a file that may hold
 * TOML beyond the supported subset elsewhere; `undefined` when the file has no such header.
 */
export declare function readTomlTable(text: string, path: string[]): TomlTable | undefined;
/** A TOML string literal. */
export declare function tomlString(s: string): string;
