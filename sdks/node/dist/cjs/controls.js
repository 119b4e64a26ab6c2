"use strict";
/**
 * What the `telemetry` command shows and changes: the consent decision and who made it,
 * the ids, the outbox and sent-log, the user's choice.
 *
 * {@link telemetryControls} resolves consent as the client does and stops there: nothing is
 * recorded, no timer started, no socket opened, no notice shown, no identity created. Each
 * operation touches only the files it names. The command takes the options, not a client,
 * for the reason the Rust SDK gives: building a client for `mytool telemetry disable`
 * would start the sender, which would upload the very events the user is opting out of.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.Controls = void 0;
exports.telemetryControls = telemetryControls;
const fs = require("node:fs");
const consent_js_1 = require("./consent.js");
const files_js_1 = require("./files.js");
const identity_js_1 = require("./identity.js");
const options_js_1 = require("./options.js");
const outbox_js_1 = require("./outbox.js");
function noHome() {
    return new Error("no home directory: set HOME (or XDG_CONFIG_HOME)");
}
/** The user's controls over one tool's telemetry. */
class Controls {
    /** @internal */
    resolved;
    constructor(options) {
        this.resolved = (0, options_js_1.resolve)(options);
    }
    get app() {
        return this.resolved.app;
    }
    get command() {
        return this.resolved.command;
    }
    /** The consent decision a client built now would have. */
    get decision() {
        return this.resolved.decision;
    }
    outbox() {
        return this.resolved.paths.data ? new outbox_js_1.Outbox(this.resolved.paths.data) : null;
    }
    /** What `telemetry status` shows. Reads files, creates none. */
    status() {
        const r = this.resolved;
        let identity = null;
        try {
            identity = r.paths.identity ? (0, identity_js_1.loadIdentity)(r.paths.identity) : null;
        }
        catch {
            identity = null;
        }
        const machine = identity || r.ci || (0, identity_js_1.osMachineId)() !== null ? (0, identity_js_1.machineId)(r.app, r.ci, identity) : null;
        const outbox = this.outbox();
        return {
            app: r.app,
            command: r.command,
            decision: r.decision,
            debug: r.debug,
            endpoint: r.endpoint,
            project: r.projectId ? { id: r.projectId, manifest: r.project?.manifest ?? null } : null,
            machine,
            outboxEvents: outbox ? outbox.len() : 0,
            sentBatches: outbox ? outbox.sent().length : 0,
            configFile: r.paths.userConfig,
            dataDir: r.paths.data,
        };
    }
    /**
     * Saves the user's choice (`enable|disable|local`) and marks the notice as seen. Choosing
     * off also deletes the outbox (its events are never sent), the sent-log and the identity
     * file. Applies from the next run, where no earlier consent source decides. Throws with a
     * message naming the file when it cannot write.
     */
    setChoice(mode) {
        const file = this.resolved.paths.userConfig;
        if (!file)
            throw noHome();
        let config = { notice_shown: false };
        try {
            config = (0, consent_js_1.loadUserConfig)(file);
        }
        catch {
            // missing or unreadable: replaced
        }
        (0, consent_js_1.saveUserConfig)(file, { ...config, telemetry: mode, notice_shown: true }, this.resolved.command);
        const choice = { configFile: file, deletedEvents: 0, deletedIdentity: null };
        if (mode !== "off")
            return choice;
        const outbox = this.outbox();
        if (outbox && fs.existsSync(outbox.dir)) {
            choice.deletedEvents = outbox.len();
            outbox.clear();
        }
        const id = this.resolved.paths.identity;
        if (id && fs.existsSync(id)) {
            fs.unlinkSync(id);
            choice.deletedIdentity = id;
        }
        if (this.resolved.paths.machineCache)
            (0, files_js_1.removeFile)(this.resolved.paths.machineCache);
        return choice;
    }
    /** A new identity (install id, salt, machine hash); the outbox and sent-log emptied. */
    reset() {
        const file = this.resolved.paths.identity;
        if (!file)
            throw noHome();
        (0, identity_js_1.writeIdentity)(file, (0, identity_js_1.randomIdentity)(true), true);
        if (this.resolved.paths.machineCache)
            (0, files_js_1.removeFile)(this.resolved.paths.machineCache);
        const outbox = this.outbox();
        if (outbox && fs.existsSync(outbox.dir))
            outbox.clear();
    }
}
exports.Controls = Controls;
/** The controls for these options: consent resolved, nothing started. */
function telemetryControls(options) {
    return new Controls(options);
}
