/**
 * Display helpers for decimal strings. Prices, quantities and money arrive as strings and are
 * formatted as strings: no value is ever turned into a float to be shown.
 */

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?$/;

/** Split "-123.4500" into { negative, int: "123", frac: "4500" }, or null when it is not a number. */
export function parseDecimal(value) {
  if (value === null || value === undefined) return null;
  const match = DECIMAL.exec(String(value).trim());
  if (!match || (match[2] === "" && (match[3] ?? "") === "")) return null;
  const int = match[2].replace(/^0+(?=\d)/, "") || "0";
  return { negative: match[1] === "-", int, frac: match[3] ?? "" };
}

/** Add one unit in the last place of a string of digits ("0999" -> "1000"); returns [digits, carry]. */
function incrementDigits(digits) {
  const out = digits.split("");
  for (let i = out.length - 1; i >= 0; i -= 1) {
    if (out[i] !== "9") {
      out[i] = String(Number(out[i]) + 1);
      return [out.join(""), false];
    }
    out[i] = "0";
  }
  return [out.join(""), true];
}

/** Round the fraction to `places` digits, half away from zero; returns { int, frac }. */
function roundParts(int, frac, places) {
  if (frac.length <= places) return { int, frac: frac.padEnd(places, "0") };
  let kept = frac.slice(0, places);
  if (frac[places] >= "5") {
    let carry;
    [kept, carry] = incrementDigits(kept);
    if (places === 0 || carry) [int] = carryInt(int);
  }
  return { int, frac: kept };
}

function carryInt(int) {
  const [digits, carry] = incrementDigits(int);
  return [carry ? `1${digits}` : digits];
}

function groupThousands(int) {
  return int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * "50000.12345678" -> "50,000.1235" with at most `maxDecimals` and at least `minDecimals` digits
 * after the point (trailing zeros beyond minDecimals are trimmed). Non-numbers come back as "—".
 */
export function formatDecimal(value, { maxDecimals = 8, minDecimals = 2, group = true, sign = false } = {}) {
  const parts = parseDecimal(value);
  if (!parts) return "—";
  const rounded = roundParts(parts.int, parts.frac, maxDecimals);
  let frac = rounded.frac.replace(/0+$/, "");
  const least = Math.min(minDecimals, maxDecimals);
  if (frac.length < least) frac = frac.padEnd(least, "0");
  const isZero = /^0*$/.test(rounded.int) && /^0*$/.test(frac);
  const int = group ? groupThousands(rounded.int) : rounded.int;
  const prefix = parts.negative && !isZero ? "-" : sign && !isZero ? "+" : "";
  return `${prefix}${int}${frac ? `.${frac}` : ""}`;
}

/** A price with the precision its size needs: 2 decimals for 50000, 4 for 1.23, 6 for 0.0123. */
export function formatPrice(value) {
  const parts = parseDecimal(value);
  if (!parts) return "—";
  const digits = parts.int === "0" ? (/^0*/.exec(parts.frac)[0].length > 2 ? 8 : 6) : parts.int.length >= 4 ? 2 : 4;
  return formatDecimal(value, { maxDecimals: digits, minDecimals: Math.min(2, digits) });
}

export function formatQuantity(value) {
  return formatDecimal(value, { maxDecimals: 8, minDecimals: 0 });
}

/** A volume in a narrow column: "1,234.57", "128.22K", "4.51M" (shifting digits, never floats). */
export function formatVolume(value) {
  const parts = parseDecimal(value);
  if (!parts) return "—";
  const units = [
    [9, "B"],
    [6, "M"],
    [3, "K"],
  ];
  for (const [digits, unit] of parts.int.length >= 6 ? units : []) {
    if (parts.int.length > digits) {
      const shifted = `${parts.negative ? "-" : ""}${parts.int.slice(0, -digits)}.${parts.int.slice(-digits)}`;
      return `${formatDecimal(shifted, { maxDecimals: 2, minDecimals: 2 })}${unit}`;
    }
  }
  return formatDecimal(value, { maxDecimals: 2, minDecimals: 2 });
}

export function formatMoney(value) {
  return formatDecimal(value, { maxDecimals: 2, minDecimals: 2 });
}

/** "2.5" -> "+2.50%", "-0.3" -> "-0.30%". */
export function formatPercent(value) {
  const text = formatDecimal(value, { maxDecimals: 2, minDecimals: 2, sign: true, group: false });
  return text === "—" ? text : `${text}%`;
}

/** -1, 0 or 1, comparing two decimal strings exactly. */
export function compareDecimal(a, b) {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (!x || !y) return 0;
  const signX = isZeroParts(x) ? 0 : x.negative ? -1 : 1;
  const signY = isZeroParts(y) ? 0 : y.negative ? -1 : 1;
  if (signX !== signY) return signX < signY ? -1 : 1;
  if (signX === 0) return 0;
  const magnitude = compareMagnitude(x, y);
  return signX > 0 ? magnitude : -magnitude;
}

function isZeroParts({ int, frac }) {
  return /^0*$/.test(int) && /^0*$/.test(frac);
}

function compareMagnitude(x, y) {
  if (x.int.length !== y.int.length) return x.int.length < y.int.length ? -1 : 1;
  if (x.int !== y.int) return x.int < y.int ? -1 : 1;
  const width = Math.max(x.frac.length, y.frac.length);
  const fx = x.frac.padEnd(width, "0");
  const fy = y.frac.padEnd(width, "0");
  if (fx === fy) return 0;
  return fx < fy ? -1 : 1;
}

/** -1, 0 or 1: the sign of a decimal string. */
export function signOf(value) {
  const parts = parseDecimal(value);
  if (!parts || isZeroParts(parts)) return 0;
  return parts.negative ? -1 : 1;
}

/** "2023-12-01T12:00:00.123Z" -> "12:00:00" in the viewer's time zone. */
export function formatTime(iso) {
  const moment = iso ? new Date(iso) : new Date();
  if (Number.isNaN(moment.getTime())) return "—";
  return moment.toLocaleTimeString([], { hour12: false });
}

/** A decimal string as [BigInt of all its digits, number of decimals]: exact, for sums and spreads. */
function toScaled(value) {
  const parts = parseDecimal(value);
  if (!parts) return null;
  const digits = BigInt(`${parts.int}${parts.frac}` || "0");
  return [parts.negative ? -digits : digits, parts.frac.length];
}

function fromScaled(scaled, places) {
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(places + 1, "0");
  const int = digits.slice(0, digits.length - places);
  const frac = places ? `.${digits.slice(-places)}` : "";
  return `${negative ? "-" : ""}${int}${frac}`;
}

function combine(a, b, operation) {
  const x = toScaled(a);
  const y = toScaled(b);
  if (!x || !y) return null;
  const places = Math.max(x[1], y[1]);
  const left = x[0] * 10n ** BigInt(places - x[1]);
  const right = y[0] * 10n ** BigInt(places - y[1]);
  return fromScaled(operation(left, right), places);
}

/** Exact decimal-string sum: addDecimal("0.1", "0.2") === "0.3". */
export function addDecimal(a, b) {
  return combine(a, b, (x, y) => x + y);
}

/** Exact decimal-string difference. */
export function subtractDecimal(a, b) {
  return combine(a, b, (x, y) => x - y);
}

/**
 * A size or quantity for a narrow column: about `digits` significant digits and at most
 * `maxDecimals` decimals ("0.00199999" -> "0.002", "12.3456789" -> "12.3457"); past `maxIntDigits`
 * whole digits it switches to K, M or B ("140000" -> "140K"). Rounded for display only: the exact
 * string goes into the cell's title. Digits are shifted as text, never through a float.
 */
export function formatSize(value, { digits = 6, maxDecimals = 6, maxIntDigits = 6 } = {}) {
  const parts = parseDecimal(value);
  if (!parts) return "—";
  let { int } = parts;
  let frac = parts.frac;
  let unit = "";
  for (const [shift, name] of [
    [9, "B"],
    [6, "M"],
    [3, "K"],
  ]) {
    if (int.length > maxIntDigits && int.length > shift) {
      frac = `${int.slice(-shift)}${frac}`;
      int = int.slice(0, -shift);
      unit = name;
      break;
    }
  }
  const intDigits = int === "0" ? 0 : int.length;
  const decimals = Math.min(unit ? 3 : maxDecimals, Math.max(0, digits - intDigits));
  const shifted = `${parts.negative ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
  return `${formatDecimal(shifted, { maxDecimals: decimals, minDecimals: 0 })}${unit}`;
}

/** A decimal string without trailing zeros or grouping, as a form field takes it: "50005.12000000" -> "50005.12". */
export function plainDecimal(value) {
  const parts = parseDecimal(value);
  if (!parts) return "";
  const frac = parts.frac.replace(/0+$/, "");
  return `${parts.negative ? "-" : ""}${parts.int}${frac ? `.${frac}` : ""}`;
}

/** -1, 0 or 1 for the value as shown: "-0.000000001" shown as "0.00" is neither up nor down. */
export function shownSign(value, format = formatMoney) {
  return signOf(format(value).replace(/[,+%KMB]/g, ""));
}

/** "up", "down" or "" for a figure's colour, judged on what is shown. */
export function directionClass(value, format = formatMoney) {
  const sign = shownSign(value, format);
  return sign > 0 ? "up" : sign < 0 ? "down" : "";
}

const PLAIN_POSITIVE = /^(?:\d+\.?\d*|\.\d+)$/;

/**
 * Why a typed amount cannot be sent, or null when it can: digits and one decimal point, above zero.
 * "45,000" is refused rather than guessed at: a comma is a thousands separator in one locale and
 * the decimal point in another.
 */
export function amountProblem(text, label) {
  const value = String(text ?? "").trim();
  if (value === "") return `${label} is required`;
  if (value.includes(",")) return `${label}: write it with digits and a decimal point only, without commas (e.g. 45000.5)`;
  if (!PLAIN_POSITIVE.test(value)) return `${label} must be a number written with digits and a decimal point, e.g. 0.01`;
  if (signOf(value) <= 0) return `${label} must be greater than 0`;
  return null;
}
