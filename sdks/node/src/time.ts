/** Timestamps as the protocol writes them (RFC 3339 in UTC, milliseconds), without `Date`. */

/** The formatted second of the last timestamp: formatting costs more than the rest of the event id and time together. */
let isoSecond = -1;
let isoPrefix = "";

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/**
 * `YYYY-MM-DDTHH:MM:SS` of a Unix second, in UTC, computed from the number (the civil date
 * of a day count, H. Hinnant's algorithm). Not `Date`: a process's first `Date` object
 * loads the local time zone (about 0.3 ms, docs/benchmarks.md) that the SDK never uses.
 * Years outside 0-9999, which `toISOString()` writes in another form, go to `Date`.
 */
function isoSecondText(second: number): string {
  const days = Math.floor(second / 86400);
  const inDay = second - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) return new Date(second * 1000).toISOString().slice(0, -5);
  const h = Math.floor(inDay / 3600);
  const m = Math.floor((inDay - h * 3600) / 60);
  const s = inDay - h * 3600 - m * 60;
  return `${String(year).padStart(4, "0")}-${pad2(month)}-${pad2(day)}T${pad2(h)}:${pad2(m)}:${pad2(s)}`;
}

/** `new Date(ms).toISOString()` for an integer `ms`, with the date and time to the second reused within a second. */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = isoSecondText(second);
  }
  return `${isoPrefix}.${String(ms - second * 1000).padStart(3, "0")}Z`;
}
