"use strict";
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
Object.defineProperty(exports, "__esModule", { value: true });
exports.parseEnv = exports.findPersonalData = exports.isSensitive = exports.scrub = exports.Outbox = exports.machineId = exports.nodeMachineId = exports.findProject = exports.createProjectId = exports.TELEMETRY_SUBCOMMANDS = exports.addTelemetryCommand = exports.runTelemetryCommand = exports.Controls = exports.telemetryControls = exports.DEFAULT_POLICY_PATH = exports.describeSource = exports.parseMode = exports.Event = exports.SDK_VERSION = exports.Telemetry = exports.createTelemetry = void 0;
var client_js_1 = require("./client.js");
Object.defineProperty(exports, "createTelemetry", { enumerable: true, get: function () { return client_js_1.createTelemetry; } });
Object.defineProperty(exports, "Telemetry", { enumerable: true, get: function () { return client_js_1.Telemetry; } });
Object.defineProperty(exports, "SDK_VERSION", { enumerable: true, get: function () { return client_js_1.SDK_VERSION; } });
var event_js_1 = require("./event.js");
Object.defineProperty(exports, "Event", { enumerable: true, get: function () { return event_js_1.Event; } });
var consent_js_1 = require("./consent.js");
Object.defineProperty(exports, "parseMode", { enumerable: true, get: function () { return consent_js_1.parseMode; } });
Object.defineProperty(exports, "describeSource", { enumerable: true, get: function () { return consent_js_1.describeSource; } });
Object.defineProperty(exports, "DEFAULT_POLICY_PATH", { enumerable: true, get: function () { return consent_js_1.DEFAULT_POLICY_PATH; } });
var controls_js_1 = require("./controls.js");
Object.defineProperty(exports, "telemetryControls", { enumerable: true, get: function () { return controls_js_1.telemetryControls; } });
Object.defineProperty(exports, "Controls", { enumerable: true, get: function () { return controls_js_1.Controls; } });
var command_js_1 = require("./command.js");
Object.defineProperty(exports, "runTelemetryCommand", { enumerable: true, get: function () { return command_js_1.runTelemetryCommand; } });
Object.defineProperty(exports, "addTelemetryCommand", { enumerable: true, get: function () { return command_js_1.addTelemetryCommand; } });
Object.defineProperty(exports, "TELEMETRY_SUBCOMMANDS", { enumerable: true, get: function () { return command_js_1.TELEMETRY_SUBCOMMANDS; } });
var project_js_1 = require("./project.js");
Object.defineProperty(exports, "createProjectId", { enumerable: true, get: function () { return project_js_1.createProjectId; } });
Object.defineProperty(exports, "findProject", { enumerable: true, get: function () { return project_js_1.findProject; } });
var identity_js_1 = require("./identity.js");
Object.defineProperty(exports, "nodeMachineId", { enumerable: true, get: function () { return identity_js_1.nodeMachineId; } });
Object.defineProperty(exports, "machineId", { enumerable: true, get: function () { return identity_js_1.machineId; } });
var outbox_js_1 = require("./outbox.js");
Object.defineProperty(exports, "Outbox", { enumerable: true, get: function () { return outbox_js_1.Outbox; } });
var scrub_js_1 = require("./scrub.js");
Object.defineProperty(exports, "scrub", { enumerable: true, get: function () { return scrub_js_1.scrub; } });
Object.defineProperty(exports, "isSensitive", { enumerable: true, get: function () { return scrub_js_1.isSensitive; } });
Object.defineProperty(exports, "findPersonalData", { enumerable: true, get: function () { return scrub_js_1.find; } });
var facts_js_1 = require("./facts.js");
Object.defineProperty(exports, "parseEnv", { enumerable: true, get: function () { return facts_js_1.parseEnv; } });
