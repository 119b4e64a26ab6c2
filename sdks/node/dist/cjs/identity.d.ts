/**
 * Machine identity: the per-tool machine hash, the random install id and the secret salt,
 * computed exactly as the Rust SDK computes them (a test asserts both give the same value
 * on one machine).
 *
 * The machine hash is HMAC-SHA256 keyed by the tool's name over the OS machine id, so two
 * tools on one machine send unrelated ids and neither can be joined to the raw id. The OS
 * id is read from files (Linux `/etc/machine-id`, `/var/lib/dbus/machine-id`; FreeBSD
 * `/etc/hostid`) or, on macOS, `IOPlatformUUID` from `ioreg` started directly (no shell)
 * and only when the first batch is built. Where none is readable (distroless containers,
 * Windows, as in the Rust SDK) a random install id kept in the user's config directory
 * takes its place. In CI every run of a vendor shares one id. The hostname is never used.
 */
/** Where the machine hash comes from: `os`, `install_id`, `ci` or `ephemeral`. */
export type MachineKind = "os" | "install_id" | "ci" | "ephemeral";
/** The machine id a tool sends: a 64-hex-digit keyed hash, and where it comes from. */
export interface MachineId {
    hash: string;
    kind: MachineKind;
    /** The CI vendor, when `kind` is `ci`. */
    vendor?: string;
}
/** The random values kept per user and tool (`identity.toml` in the config dir). */
export interface LocalIdentity {
    /** Stands in for the machine id where the OS has none. */
    install_id: string;
    /** Keys the hashes of sensitive values; never leaves the machine. */
    salt: string;
    /** Set by `telemetry reset`: mixed into the machine hash so the reset changes it. */
    reset?: string;
}
export declare function randomIdentity(reset: boolean): LocalIdentity;
/** Reads the identity file; throws when missing (`ENOENT`) or malformed. */
export declare function loadIdentity(file: string): LocalIdentity;
/**
 * Writes the identity file; with `replace` an existing one is replaced, otherwise an
 * existing one wins (`EEXIST`): the file appears complete or not at all (hard link of a
 * written temporary file).
 */
export declare function writeIdentity(file: string, id: LocalIdentity, replace: boolean): void;
/** Reads the identity file, creating it when missing; two processes creating it at once agree on one. */
export declare function loadOrCreateIdentity(file: string): LocalIdentity;
/** The salt's bytes (hex-decoded, or the text itself when it is not hex, as in Rust). */
export declare function saltBytes(id: LocalIdentity): Buffer;
/** HMAC-SHA256 of `message` keyed with `key`, hex. */
export declare function hmacHex(key: Buffer | string, message: Buffer | string): string;
/** The hash a sensitive value is replaced with: 16 hex digits of HMAC(salt, value). */
export declare function hashSensitive(salt: Buffer, value: string): string;
/**
 * The machine id for `app`: the CI vendor's shared id, else the OS id, else the install id,
 * else (no identity could be stored) an ephemeral one.
 *
 * With `cache` (a file in the tool's config directory), the OS and install-id hashes are
 * kept there and reused while the hashed value is unchanged (see {@link cachedHash}).
 */
export declare function machineId(app: string, ci: string | null, identity: LocalIdentity | null, cache?: string | null): MachineId;
/** The raw OS machine id, trimmed; `null` when there is none (or only a blank/zero one). */
export declare function osMachineId(): string | null;
/**
 * Exactly what npm's `node-machine-id` (1.1.12) returns from `machineIdSync()`: the hex
 * SHA-256 of the machine id as that package reads it, for tools migrating from it. On Linux
 * the first line of `/var/lib/dbus/machine-id`, or of `/etc/machine-id` when the first is
 * missing, or else the hostname; whitespace removed, lower-cased. On FreeBSD `/etc/hostid`,
 * on macOS `IOPlatformUUID`. `null` where it cannot be read without a shell (Windows).
 *
 * Unlike {@link machineId} this value is not keyed: every tool on the machine sees the same
 * one. Use it only for compatibility.
 */
export declare function nodeMachineId(): string | null;
/** The value `node-machine-id` hashes (`machineIdSync(true)`). */
export declare function nodeMachineIdOriginal(): string | null;
