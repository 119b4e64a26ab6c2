/**
 * The `telemetry status|enable|disable|local|show|reset` command a CLI mounts: one plain
 * function over an argument list, and an adapter for commander (an optional peer; the
 * adapter takes the host's own `Command`, so this package never loads commander itself).
 * Both take the tool's options, never a client: nothing is recorded, started or sent.
 */
import type { TelemetryOptions } from "./options.js";
/** Where the command prints. */
export interface Output {
    write(text: string): unknown;
}
/** The subcommands and what they do (for help texts). */
export declare const TELEMETRY_SUBCOMMANDS: [string, string][];
/**
 * Runs `telemetry <args>` (`[]` means `status`; `status` and `show` take `--json`) for the
 * tool these options configure, printing to `out`. Returns the exit code: 0, or 2 for
 * unknown arguments (with a message naming them). Throws when a file cannot be written.
 */
export declare function runTelemetryCommand(options: TelemetryOptions, args: string[], out?: Output): number;
/** The part of commander's `Command` the adapter uses. */
export interface CommanderLike {
    command(name: string): CommanderLike;
    description(text: string): CommanderLike;
    option(flags: string, description: string): CommanderLike;
    action(fn: (...args: any[]) => unknown): CommanderLike;
}
/**
 * Adds `telemetry status|enable|disable|local|show|reset` to a commander program:
 * `addTelemetryCommand(program, options)`. `options` may be a function, called only when
 * the command runs (so that `-C dir` style global options can be read first). Sets
 * `process.exitCode` and prints errors to stderr instead of throwing.
 */
export declare function addTelemetryCommand(program: CommanderLike, options: TelemetryOptions | (() => TelemetryOptions)): CommanderLike;
