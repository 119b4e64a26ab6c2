/**
 * tally-telemetry: privacy-first usage telemetry for Node.js developer tools, with the
 * guarantees and the behaviour of the Rust SDK (`crates/tally`, docs/sdk.md).
 *
 * ```js
 * const { createTelemetry, Event } = require("tally-telemetry");
 * const telemetry = createTelemetry({ app: "mytool", version: "1.2.3", endpoint: "https://telemetry.example.com" });
 * telemetry.record(Event.commandRun("build").plugin("sass"));
 * // nothing else: at exit, what is unsent is kept for the next run
 * ```
 */
export { createTelemetry, Telemetry, SDK_VERSION } from "./client.js";
export type { TelemetryOptions } from "./options.js";
export { Event, type EventFields, type Value } from "./event.js";
export { parseMode, describeSource, DEFAULT_POLICY_PATH, type Mode, type Source, type Decision } from "./consent.js";
export { telemetryControls, Controls, type Status, type Choice } from "./controls.js";
export { runTelemetryCommand, addTelemetryCommand, TELEMETRY_SUBCOMMANDS, type CommanderLike, type Output } from "./command.js";
export { createProjectId, findProject, type ManifestKind, type Project } from "./project.js";
export { nodeMachineId, machineId, type MachineId, type MachineKind } from "./identity.js";
export { Outbox, type Chunk, type SentRecord } from "./outbox.js";
export { scrub, isSensitive, find as findPersonalData, type Finding } from "./scrub.js";
export { parseEnv, type Env } from "./facts.js";
export type { Batch, Context, WireEvent, PropValue } from "./protocol.js";
