/** Timestamps as the protocol writes them (RFC 3339 in UTC, milliseconds), without `Date`. */
/** `new Date(ms).toISOString()` for an integer `ms`, with the date and time to the second reused within a second. */
export declare function isoTime(ms: number): string;
