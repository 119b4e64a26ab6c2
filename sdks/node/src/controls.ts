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

import * as fs from "node:fs";

import { Decision, loadUserConfig, Mode, saveUserConfig, UserConfig } from "./consent.js";
import { removeFile } from "./files.js";
import { loadIdentity, MachineId, machineId, osMachineId, randomIdentity, writeIdentity } from "./identity.js";
import { resolve, Resolved, TelemetryOptions } from "./options.js";
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
  project: { id: string; manifest: string | null } | null;
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

function noHome(): Error {
  return new Error("no home directory: set HOME (or XDG_CONFIG_HOME)");
}

/** The user's controls over one tool's telemetry. */
export class Controls {
  /** @internal */
  readonly resolved: Resolved;

  constructor(options: TelemetryOptions) {
    this.resolved = resolve(options);
  }

  get app(): string {
    return this.resolved.app;
  }

  get command(): string {
    return this.resolved.command;
  }

  /** The consent decision a client built now would have. */
  get decision(): Decision {
    return this.resolved.decision;
  }

  outbox(): Outbox | null {
    return this.resolved.paths.data ? new Outbox(this.resolved.paths.data) : null;
  }

  /** What `telemetry status` shows. Reads files, creates none. */
  status(): Status {
    const r = this.resolved;
    let identity = null;
    try {
      identity = r.paths.identity ? loadIdentity(r.paths.identity) : null;
    } catch {
      identity = null;
    }
    const machine = identity || r.ci || osMachineId() !== null ? machineId(r.app, r.ci, identity) : null;
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
  setChoice(mode: Mode): Choice {
    const file = this.resolved.paths.userConfig;
    if (!file) throw noHome();
    let config: UserConfig = { notice_shown: false };
    try {
      config = loadUserConfig(file);
    } catch {
      // missing or unreadable: replaced
    }
    saveUserConfig(file, { ...config, telemetry: mode, notice_shown: true }, this.resolved.command);
    const choice: Choice = { configFile: file, deletedEvents: 0, deletedIdentity: null };
    if (mode !== "off") return choice;
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
    if (this.resolved.paths.machineCache) removeFile(this.resolved.paths.machineCache);
    return choice;
  }

  /** A new identity (install id, salt, machine hash); the outbox and sent-log emptied. */
  reset(): void {
    const file = this.resolved.paths.identity;
    if (!file) throw noHome();
    writeIdentity(file, randomIdentity(true), true);
    if (this.resolved.paths.machineCache) removeFile(this.resolved.paths.machineCache);
    const outbox = this.outbox();
    if (outbox && fs.existsSync(outbox.dir)) outbox.clear();
  }
}

/** The controls for these options: consent resolved, nothing started. */
export function telemetryControls(options: TelemetryOptions): Controls {
  return new Controls(options);
}
