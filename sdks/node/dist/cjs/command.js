"use strict";
/**
 * The `telemetry status|enable|disable|local|show|reset` command a CLI mounts: one plain
 * function over an argument list, and an adapter for commander (an optional peer; the
 * adapter takes the host's own `Command`, so this package never loads commander itself).
 * Both take the tool's options, never a client: nothing is recorded, started or sent.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.TELEMETRY_SUBCOMMANDS = void 0;
exports.runTelemetryCommand = runTelemetryCommand;
exports.addTelemetryCommand = addTelemetryCommand;
const path = require("node:path");
const consent_js_1 = require("./consent.js");
const controls_js_1 = require("./controls.js");
function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
}
/** The subcommands and what they do (for help texts). */
exports.TELEMETRY_SUBCOMMANDS = [
    ["status", "Show whether telemetry is on, who decided, the ids sent and the outbox"],
    ["enable", "Send anonymous usage data (from the next run)"],
    ["disable", "Send nothing and keep nothing; deletes the unsent events, the sent-log and the install id"],
    ["local", "Keep events on this machine only, where `show` lists them; send nothing"],
    ["show", "Show the events waiting to be sent and those sent recently"],
    ["reset", "Start over with a new install id and salt; empties the outbox"],
];
/**
 * Runs `telemetry <args>` (`[]` means `status`; `status` and `show` take `--json`) for the
 * tool these options configure, printing to `out`. Returns the exit code: 0, or 2 for
 * unknown arguments (with a message naming them). Throws when a file cannot be written.
 */
function runTelemetryCommand(options, args, out = process.stdout) {
    const [sub = "status", ...rest] = args;
    const json = rest.includes("--json");
    const unknown = rest.filter((a) => a !== "--json" || !["status", "show"].includes(sub));
    if (unknown.length > 0 || !exports.TELEMETRY_SUBCOMMANDS.some(([n]) => n === sub)) {
        const what = unknown.length > 0 ? unknown.join(" ") : sub;
        out.write(`error: unexpected argument ${JSON.stringify(what)}; use one of ${exports.TELEMETRY_SUBCOMMANDS.map(([n]) => n).join(", ")}\n`);
        return 2;
    }
    const t = new controls_js_1.Controls(options);
    switch (sub) {
        case "status":
            status(t, json, out);
            break;
        case "enable":
            choose(t, "on", out);
            break;
        case "disable":
            choose(t, "off", out);
            break;
        case "local":
            choose(t, "local", out);
            break;
        case "show":
            show(t, json, out);
            break;
        case "reset":
            t.reset();
            out.write(`${t.command}: new install id and salt created; outbox and sent-log emptied\n`);
            break;
    }
    return 0;
}
function status(t, json, out) {
    const s = t.status();
    if (json) {
        const v = {
            app: s.app,
            mode: s.decision.mode,
            source: s.decision.source.key,
            source_detail: (0, consent_js_1.describeSource)(s.decision.source),
            debug: s.debug,
            endpoint: s.endpoint,
            project: s.project?.id ?? null,
            manifest: s.project?.manifest ?? null,
            machine: s.machine?.hash ?? null,
            machine_kind: s.machine?.kind ?? null,
            outbox_events: s.outboxEvents,
            sent_batches: s.sentBatches,
            config_file: s.configFile,
            data_dir: s.dataDir,
        };
        out.write(`${JSON.stringify(v, null, 2)}\n`);
        return;
    }
    let text = `telemetry: ${s.decision.mode} (decided by ${(0, consent_js_1.describeSource)(s.decision.source)})\n`;
    if (s.debug)
        text += "  debug: payloads are printed, nothing is sent\n";
    if (s.endpoint)
        text += `endpoint: ${s.endpoint}\n`;
    if (!s.project)
        text += "project: none (no uuid in the project's manifest)\n";
    else if (s.project.manifest)
        text += `project: ${s.project.id} (from ${s.project.manifest})\n`;
    else
        text += `project: ${s.project.id} (set by the tool)\n`;
    if (s.machine) {
        const from = s.machine.kind === "os"
            ? "keyed hash of the OS machine id"
            : s.machine.kind === "install_id"
                ? "keyed hash of a random install id"
                : s.machine.kind === "ci"
                    ? `shared by every ${s.machine.vendor} CI run`
                    : "not stored";
        text += `machine: ${s.machine.hash} (${from})\n`;
    }
    text += `outbox: ${plural(s.outboxEvents, "event", "events")} waiting, ${plural(s.sentBatches, "batch", "batches")} sent recently (see \`${s.command} telemetry show\`)\n`;
    if (s.configFile)
        text += `config: ${s.configFile}\n`;
    out.write(text);
}
function choose(t, mode, out) {
    const choice = t.setChoice(mode);
    const what = mode === "off"
        ? "disabled: nothing is recorded, kept or sent"
        : mode === "local"
            ? "local: events are kept on this machine only"
            : "enabled: anonymous usage data is sent";
    let text = `${t.command} telemetry ${what} (saved in ${choice.configFile})\n`;
    if (mode === "off") {
        text +=
            choice.deletedEvents === 0
                ? "no unsent events were waiting\n"
                : `deleted the outbox: ${plural(choice.deletedEvents, "unsent event", "unsent events")}, which will never be sent\n`;
        if (choice.deletedIdentity)
            text += `deleted the install id and salt (${choice.deletedIdentity})\n`;
    }
    const d = t.decision;
    const overridden = ["policy", "do_not_track", "app_variable", "no_project_id", "project_manifest"].includes(d.source.key);
    if (overridden && d.mode !== mode) {
        text += `note: ${(0, consent_js_1.describeSource)(d.source)} decides before your choice here, so telemetry stays ${d.mode}\n`;
    }
    out.write(text);
}
function show(t, json, out) {
    const outbox = t.outbox();
    if (!outbox) {
        out.write("no data directory (HOME is not set): nothing is kept\n");
        return;
    }
    const queued = outbox.chunks();
    const sent = outbox.sent();
    if (json) {
        out.write(`${JSON.stringify({ queued, sent }, null, 2)}\n`);
        return;
    }
    const n = queued.reduce((a, c) => a + c.events.length, 0);
    let text = `${plural(n, "event", "events")} waiting in ${path.join(outbox.dir, "outbox-*.jsonl")}\n`;
    for (const c of queued) {
        text += `  with ${JSON.stringify(c.context)}\n`;
        for (const e of c.events)
            text += `    ${JSON.stringify(e)}\n`;
    }
    text += `${plural(sent.length, "batch", "batches")} sent recently:\n`;
    for (const r of sent) {
        const dropped = r.dropped_props
            ? `; ${plural(r.dropped_props, "property", "properties")} dropped by the collector: not in the app's schema`
            : "";
        text += `  ${r.sent_at} — ${plural(r.events.length, "event", "events")} (accepted ${r.accepted}, duplicate ${r.duplicate}, rejected ${r.rejected}${dropped})\n`;
        for (const e of r.events)
            text += `    ${JSON.stringify(e)}\n`;
    }
    out.write(text);
}
/**
 * Adds `telemetry status|enable|disable|local|show|reset` to a commander program:
 * `addTelemetryCommand(program, options)`. `options` may be a function, called only when
 * the command runs (so that `-C dir` style global options can be read first). Sets
 * `process.exitCode` and prints errors to stderr instead of throwing.
 */
function addTelemetryCommand(program, options) {
    const telemetry = program.command("telemetry").description("See and change what this tool's telemetry does");
    const run = (args) => {
        try {
            const code = runTelemetryCommand(typeof options === "function" ? options() : options, args);
            if (code !== 0)
                process.exitCode = code;
        }
        catch (e) {
            process.stderr.write(`error: ${e.message}\n`);
            process.exitCode = 1;
        }
    };
    for (const [name, about] of exports.TELEMETRY_SUBCOMMANDS) {
        const sub = telemetry.command(name).description(about);
        if (name === "status" || name === "show")
            sub.option("--json", "Print JSON");
        sub.action((opts) => run(opts?.json ? [name, "--json"] : [name]));
    }
    telemetry.action(() => run(["status"]));
    return telemetry;
}
