// Unit tests of static/js/format.js: decimal strings are formatted and compared without floats.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addDecimal,
  compareDecimal,
  formatDecimal,
  formatPercent,
  formatPrice,
  formatVolume,
  signOf,
  subtractDecimal,
} from "../../../static/js/format.js";

test("formatDecimal groups thousands and rounds half away from zero, as strings", () => {
  assert.equal(formatDecimal("50000.12345678"), "50,000.12345678");
  assert.equal(formatDecimal("9.995", { maxDecimals: 2 }), "10.00");
  assert.equal(formatDecimal("-1234567.005", { maxDecimals: 2 }), "-1,234,567.01");
  assert.equal(formatDecimal("0.1", { maxDecimals: 8, minDecimals: 0 }), "0.1");
  assert.equal(formatDecimal("-0.001", { maxDecimals: 2 }), "0.00");
  assert.equal(formatDecimal("99999999999999999999.99", { maxDecimals: 1 }), "100,000,000,000,000,000,000.0");
  assert.equal(formatDecimal("not a number"), "—");
  assert.equal(formatDecimal(null), "—");
});

test("formatPrice picks a precision that fits the price", () => {
  assert.equal(formatPrice("50000.00000000"), "50,000.00");
  assert.equal(formatPrice("1.23456789"), "1.2346");
  assert.equal(formatPrice("0.01234567"), "0.012346");
  assert.equal(formatPrice("0.00001234"), "0.00001234");
});

test("formatPercent always shows the sign", () => {
  assert.equal(formatPercent("2.5"), "+2.50%");
  assert.equal(formatPercent("-0.333"), "-0.33%");
  assert.equal(formatPercent("0"), "0.00%");
});

test("decimal strings compare and add exactly", () => {
  assert.equal(compareDecimal("10.0", "9.99"), 1);
  assert.equal(compareDecimal("1.10", "1.1"), 0);
  assert.equal(compareDecimal("-2", "-1"), -1);
  assert.equal(addDecimal("0.1", "0.2"), "0.3");
  assert.equal(subtractDecimal("50050.00", "49950.5"), "99.50");
  assert.equal(subtractDecimal("0.001", "0.01"), "-0.009");
  assert.equal(signOf("-0.00"), 0);
  assert.equal(signOf("-0.01"), -1);
});

test("formatVolume shortens large volumes by shifting digits", () => {
  assert.equal(formatVolume("13.2215"), "13.22");
  assert.equal(formatVolume("12345.678"), "12,345.68");
  assert.equal(formatVolume("128222.80"), "128.22K");
  assert.equal(formatVolume("4512345.1"), "4.51M");
  assert.equal(formatVolume("98765432109.5"), "98.77B");
});

test("formatSize keeps a quantity short: about 6 significant digits, K/M beyond a million", async () => {
  const { formatSize } = await import("../../../static/js/format.js");
  assert.equal(formatSize("0.00199999"), "0.002");
  assert.equal(formatSize("0.00123456789"), "0.001235");
  assert.equal(formatSize("12.3456789"), "12.3457");
  assert.equal(formatSize("1234.56789"), "1,234.57");
  assert.equal(formatSize("123456.7"), "123,457");
  assert.equal(formatSize("12345678.9"), "12.346M");
  assert.equal(formatSize("140000", { digits: 5, maxDecimals: 4, maxIntDigits: 4 }), "140K");
  assert.equal(formatSize("12345.6", { digits: 5, maxDecimals: 4, maxIntDigits: 4 }), "12.346K");
  assert.equal(formatSize("1234.56", { digits: 5, maxDecimals: 4, maxIntDigits: 4 }), "1,234.6");
  assert.equal(formatSize("999999999999.5", { digits: 5, maxIntDigits: 4 }), "1,000B");
  assert.equal(formatSize("0.54321", { digits: 5, maxDecimals: 4 }), "0.5432");
  assert.equal(formatSize("0.00000000"), "0");
});

test("plainDecimal gives a form field the exact value without zeros or commas", async () => {
  const { plainDecimal } = await import("../../../static/js/format.js");
  assert.equal(plainDecimal("50005.12000000"), "50005.12");
  assert.equal(plainDecimal("0.45670000"), "0.4567");
  assert.equal(plainDecimal("3000.00000000"), "3000");
});

test("colours follow the value as shown: a PnL shown as 0.00 is neutral", async () => {
  const { directionClass, shownSign } = await import("../../../static/js/format.js");
  assert.equal(directionClass("-0.000000000001"), "");
  assert.equal(directionClass("0"), "");
  assert.equal(directionClass("-0.01"), "down");
  assert.equal(directionClass("1,5"), "");
  assert.equal(directionClass("12.5"), "up");
  assert.equal(shownSign("-0.004"), 0);
  assert.equal(shownSign("-0.005"), -1);
});

test("amountProblem refuses what the API would misread, with a message naming the field once", async () => {
  const { amountProblem } = await import("../../../static/js/format.js");
  assert.equal(amountProblem("0.01", "Quantity"), null);
  assert.equal(amountProblem(".5", "Quantity"), null);
  assert.equal(amountProblem("45000", "Limit price"), null);
  assert.match(amountProblem("45,000", "Limit price"), /^Limit price: .*without commas/);
  assert.equal(amountProblem("0", "Quantity"), "Quantity must be greater than 0");
  assert.equal(amountProblem("", "Quantity"), "Quantity is required");
  assert.match(amountProblem("1e3", "Quantity"), /^Quantity must be a number/);
  assert.match(amountProblem("-1", "Quantity"), /^Quantity must be a number/);
});
