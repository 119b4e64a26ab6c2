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
export { Event } from "./event.js";
export { parseMode, describeSource, DEFAULT_POLICY_PATH } from "./consent.js";
export { telemetryControls, Controls } from "./controls.js";
export { runTelemetryCommand, addTelemetryCommand, TELEMETRY_SUBCOMMANDS } from "./command.js";
export { createProjectId, findProject } from "./project.js";
export { nodeMachineId, machineId } from "./identity.js";
export { Outbox } from "./outbox.js";
export { scrub, isSensitive, find as findPersonalData } from "./scrub.js";
export { parseEnv } from "./facts.js";
