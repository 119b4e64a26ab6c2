/** Where the SDK reads environment variables from, and how opt-out variables are read. */
/** The environment as the SDK sees it: `process.env`, or (tests) a fixed map. */
export type Vars = Readonly<Record<string, string | undefined>>;
/**
 * How opt-out variables (`DO_NOT_TRACK`, `<APP>_TELEMETRY_DISABLED`, `<APP>_TELEMETRY_DEBUG`)
 * are read: any value counts as "yes" except, ignoring case and surrounding spaces, the
 * empty string, `0`, `false`, `no`, `off` and `n`. Anything unusual errs on the side of
 * not tracking (the Rust SDK's rule).
 */
export declare function isYes(value: string): boolean;
/** Whether `name` is set to a value that counts as "yes". */
export declare function flag(vars: Vars, name: string): boolean;
/** The prefix of the app's own variables: `my-tool` -> `MY_TOOL`. */
export declare function appPrefix(app: string): string;
