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
