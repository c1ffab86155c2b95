// static/js/api.js: the server's refusals as one readable line, the field named once.

import assert from "node:assert/strict";
import { test } from "node:test";

import { describeError } from "../../../static/js/api.js";

test("a field's message that already names the field is not prefixed with it again", () => {
  assert.equal(describeError(400, { quantity: ["quantity must be greater than 0"] }), "Quantity must be greater than 0");
  assert.equal(
    describeError(400, { quantity: ["order value 1 is below BTCUSDT's minimum of 5; increase the quantity"] }),
    "Quantity: order value 1 is below BTCUSDT's minimum of 5; increase the quantity",
  );
  assert.equal(describeError(400, { max_notional: ["Max notional must be positive"] }), "Max notional must be positive");
  assert.equal(describeError(400, { non_field_errors: ["Nope"] }), "Nope");
  assert.equal(describeError(400, { detail: "Not found." }), "Not found.");
  assert.equal(describeError(0, null), "The server could not be reached");
});
