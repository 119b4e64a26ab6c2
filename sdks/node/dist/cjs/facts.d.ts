/**
 * Facts about the environment: OS, architecture, coarse hardware size, CI, container, and
 * the deployment environment. Read from environment variables, `node:os` and a few files;
 * nothing spawns a process. Values are coarse on purpose, as in the Rust SDK.
 */
import type { Vars } from "./vars.js";
/** The environment a tool runs in. */
export type Env = "development" | "staging" | "production" | "test";
/** Environment facts sent with every batch. */
export interface Facts {
    /** OS family with the Rust SDK's names: `linux`, `macos`, `windows`, `freebsd`, ... */
    os: string;
    /** OS version (Linux: kernel `major.minor`); empty when unknown. */
    osVersion: string;
    /** CPU architecture with the Rust SDK's names, e.g. `x86_64`, `aarch64`. */
    arch: string;
    /** Logical CPUs, rounded down to a power of two (only with host facts). */
    cpus?: number;
    /** Memory in GiB, rounded, then down to a power of two (only with host facts). */
    memoryGb?: number;
    ci: string | null;
    container: boolean;
}
export declare function gatherFacts(vars: Vars, hardware: boolean): Facts;
/** The CI vendor; `generic` for an unknown system that sets `CI` (or `CONTINUOUS_INTEGRATION`). */
export declare function ciVendor(vars: Vars): string | null;
/** `6.8.0-45-generic` -> `6.8`. */
export declare function majorMinor(release: string): string;
/** Maps the usual spellings of an environment name; `null` for anything else. */
export declare function parseEnv(s: string): Env | null;
/** The tool's own `<PREFIX>_ENV`, then `NODE_ENV`, `APP_ENV`, `RAILS_ENV`, `ENVIRONMENT`; development otherwise. */
export declare function detectEnv(vars: Vars, prefix: string): Env;
