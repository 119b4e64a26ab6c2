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
import { Decision, Mode } from "./consent.js";
import { MachineId } from "./identity.js";
import { TelemetryOptions } from "./options.js";
import { Outbox } from "./outbox.js";
/** What `telemetry status` shows. */
export interface Status {
    app: string;
    command: string;
    decision: Decision;
    /** `<APP>_TELEMETRY_DEBUG` is set: payloads are printed, nothing is sent. */
    debug: boolean;
    endpoint: string | null;
    /** The project id and the manifest it was read from (`null`: set by the tool). */
    project: {
        id: string;
        manifest: string | null;
    } | null;
    /** The machine id that is (or would be) sent; `null` while none can be derived (status creates nothing). */
    machine: MachineId | null;
    outboxEvents: number;
    sentBatches: number;
    configFile: string | null;
    dataDir: string | null;
}
/** What {@link Controls.setChoice} did. */
export interface Choice {
    configFile: string;
    /** Choosing off: the unsent events deleted with the outbox (they are never sent). */
    deletedEvents: number;
    /** Choosing off: the identity file (install id and salt) that was deleted. */
    deletedIdentity: string | null;
}
/** The user's controls over one tool's telemetry. */
export declare class Controls {
    constructor(options: TelemetryOptions);
    get app(): string;
    get command(): string;
    /** The consent decision a client built now would have. */
    get decision(): Decision;
    outbox(): Outbox | null;
    /** What `telemetry status` shows. Reads files, creates none. */
    status(): Status;
    /**
     * Saves the user's choice (`enable|disable|local`) and marks the notice as seen. Choosing
     * off also deletes the outbox (its events are never sent), the sent-log and the identity
     * file. Applies from the next run, where no earlier consent source decides. Throws with a
     * message naming the file when it cannot write.
     */
    setChoice(mode: Mode): Choice;
    /** A new identity (install id, salt, machine hash); the outbox and sent-log emptied. */
    reset(): void;
}
/** The controls for these options: consent resolved, nothing started. */
export declare function telemetryControls(options: TelemetryOptions): Controls;
