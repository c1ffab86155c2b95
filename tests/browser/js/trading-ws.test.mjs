// Unit tests of static/js/trading-ws.js with a fake WebSocket and Node's mocked timers.
// Run: node --test tests/browser/js/   (tests/browser/test_client_js.py runs them under pytest)

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { State, TradingWebSocket, backoffDelay, bookChecksum, crc32, jwtExpiry } from "../../../static/js/trading-ws.js";

class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = FakeWebSocket.CLOSED;
  }

  // --- driven by the tests ---
  serverOpen() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }

  serverSend(message) {
    this.onmessage?.({ data: JSON.stringify({ timestamp: "2024-01-01T00:00:00.000Z", ...message }) });
  }

  serverClose(code, reason = "") {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
}

const latest = () => FakeWebSocket.instances.at(-1);
const flush = async () => {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
};

beforeEach(() => {
  FakeWebSocket.instances = [];
  globalThis.WebSocket = FakeWebSocket;
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_700_000_000_000 });
});

afterEach(() => {
  mock.timers.reset();
});

function client(options = {}) {
  return new TradingWebSocket({ url: "ws://gateway.test/ws/trading", heartbeatInterval: 30, reconnectTimeout: 60, random: () => 1, ...options });
}

describe("backoffDelay", () => {
  test("grows exponentially up to the cap and never above it", () => {
    const delays = [1, 2, 3, 4, 5, 10, 50].map((attempt) => backoffDelay(attempt, { initial: 0.5, cap: 8, random: () => 1 }));
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  });

  test("is jittered between zero and the ceiling", () => {
    assert.equal(backoffDelay(4, { initial: 1, cap: 60, random: () => 0.5 }), 4000);
    assert.equal(backoffDelay(4, { initial: 1, cap: 60, random: () => 0 }), 100);
  });

  test("respects a floor", () => {
    assert.equal(backoffDelay(1, { initial: 0.5, cap: 60, floor: 5, random: () => 0 }), 5000);
  });
});

describe("TradingWebSocket", () => {
  test("never gives up reconnecting, and the delay stays under the cap", () => {
    const ws = client({ reconnectTimeout: 10 });
    const states = [];
    ws.on("state", ({ state, delay }) => states.push([state, delay]));
    ws.connect();
    for (let attempt = 1; attempt <= 25; attempt += 1) {
      latest().serverClose(1006);
      assert.equal(ws.state, State.RECONNECTING);
      const [, delay] = states.at(-1);
      assert.ok(delay <= 10_000, `attempt ${attempt}: ${delay} ms`);
      mock.timers.tick(delay);
    }
    assert.equal(FakeWebSocket.instances.length, 26);
    assert.equal(ws.attempt, 25);
  });

  test("a healthy connection resets the backoff", () => {
    const ws = client();
    ws.connect();
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", channels: ["orders"] });
    assert.equal(ws.attempt, 0);
  });

  test("subscriptions are sent on open and replayed after a reconnect", () => {
    const ws = client();
    ws.subscribe(["orders", "portfolio"]);
    ws.subscribeSymbols(["BTCUSDT"]);
    ws.connect();
    latest().serverOpen();
    const expected = [
      { type: "subscribe", channels: ["orders", "portfolio"] },
      { type: "subscribe_symbol", symbols: ["BTCUSDT"] },
    ];
    assert.deepEqual(latest().sent, expected);
    ws.unsubscribe(["portfolio"]);
    assert.deepEqual(latest().sent.at(-1), { type: "unsubscribe", channels: ["portfolio"] });
    latest().serverClose(1012, "service restart");
    mock.timers.tick(60_000);
    latest().serverOpen();
    assert.deepEqual(latest().sent, [
      { type: "subscribe", channels: ["orders"] },
      { type: "subscribe_symbol", symbols: ["BTCUSDT"] },
    ]);
  });

  test("market streams are replayed too", () => {
    const ws = new TradingWebSocket({ url: "ws://gateway.test/ws/market", random: () => 1 });
    ws.subscribeTicker(["BTCUSDT", "ETHUSDT"]).subscribeTrades(["BTCUSDT"]).subscribeOrderbook(["BTCUSDT"]);
    ws.connect();
    assert.equal(latest().protocols, undefined);
    latest().serverOpen();
    assert.deepEqual(
      latest().sent.map((m) => m.type),
      ["subscribe_ticker", "subscribe_trades", "subscribe_orderbook"],
    );
  });

  test("the token travels as the bearer subprotocol pair", async () => {
    const ws = client({ getToken: async () => "token-1" });
    ws.connect();
    await flush();
    assert.deepEqual(latest().protocols, ["bearer", "token-1"]);
  });

  test("4001 fetches a fresh token and reconnects at once", async () => {
    const calls = [];
    const ws = client({
      getToken: async ({ refresh }) => {
        calls.push(refresh);
        return `token-${calls.length}`;
      },
    });
    ws.connect();
    await flush();
    latest().serverOpen();
    latest().serverSend({ type: "error", code: 4001, message: "Token expired" });
    latest().serverClose(4001, "Token expired");
    mock.timers.tick(0);
    await flush();
    assert.deepEqual(calls, [false, true]);
    assert.deepEqual(latest().protocols, ["bearer", "token-2"]);
    assert.equal(ws.state, State.CONNECTING);
  });

  test("4001 without a way to get a token stops", () => {
    const ws = client();
    ws.connect();
    latest().serverClose(4001, "Authentication token required");
    assert.equal(ws.state, State.STOPPED);
  });

  test("a signed-out session (no token) stops", async () => {
    const ws = client({ getToken: async () => null });
    const stopped = [];
    ws.on("stopped", (detail) => stopped.push(detail));
    ws.connect();
    await flush();
    assert.equal(ws.state, State.STOPPED);
    assert.equal(FakeWebSocket.instances.length, 0);
    assert.equal(stopped.length, 1);
  });

  test("4002 stops for good", async () => {
    const ws = client({ getToken: async () => "token" });
    const stopped = [];
    ws.on("stopped", (detail) => stopped.push(detail));
    ws.connect();
    await flush();
    latest().serverOpen();
    latest().serverClose(4002, "User not found or inactive");
    mock.timers.tick(600_000);
    await flush();
    assert.equal(ws.state, State.STOPPED);
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.equal(stopped[0].code, 4002);
  });

  test("4003 and 4029 back off for at least busyDelay", () => {
    for (const code of [4003, 4029]) {
      const ws = client({ random: () => 0, busyDelay: 5 });
      let delay = null;
      ws.on("state", (detail) => {
        if (detail.state === State.RECONNECTING) delay = detail.delay;
      });
      ws.connect();
      latest().serverOpen();
      latest().serverClose(code);
      assert.ok(delay >= 5000, `${code}: ${delay}`);
      ws.close();
    }
  });

  test("a silent link is probed with a ping, then dropped and reconnected", () => {
    const ws = client({ heartbeatInterval: 10 });
    const stale = [];
    ws.on("stale", (detail) => stale.push(detail));
    ws.connect();
    const first = latest();
    first.serverOpen();
    mock.timers.tick(13_000);
    assert.deepEqual(first.sent.at(-1), { type: "ping" });
    mock.timers.tick(13_000); // 26 s > 2 x 10 + 5
    assert.equal(stale.length, 1);
    assert.equal(first.closedWith.code, 4000);
    assert.equal(ws.state, State.RECONNECTING);
    mock.timers.tick(60_000);
    assert.notEqual(latest(), first);
  });

  test("heartbeats keep a quiet link alive", () => {
    const ws = client({ heartbeatInterval: 10 });
    ws.connect();
    latest().serverOpen();
    for (let i = 0; i < 10; i += 1) {
      mock.timers.tick(10_000);
      latest().serverSend({ type: "heartbeat" });
    }
    assert.equal(ws.state, State.OPEN);
    assert.equal(FakeWebSocket.instances.length, 1);
  });

  test("every server message type is emitted by name, and unknown ones as unknown", () => {
    const ws = client();
    const seen = [];
    for (const type of ["ticker", "trade", "orderbook", "order_update", "risk_alert", "bot_status", "portfolio", "pong", "heartbeat", "subscribed", "unsubscribed", "error", "unknown"]) {
      ws.on(type, (message) => seen.push(type === "unknown" ? `unknown:${message.type ?? "raw"}` : type));
    }
    ws.connect();
    latest().serverOpen();
    for (const type of ["ticker", "trade", "orderbook", "order_update", "risk_alert", "bot_status", "portfolio", "pong", "heartbeat", "subscribed", "unsubscribed", "error", "surprise"]) {
      latest().serverSend({ type });
    }
    latest().onmessage({ data: "not json" });
    assert.deepEqual(seen, ["ticker", "trade", "orderbook", "order_update", "risk_alert", "bot_status", "portfolio", "pong", "heartbeat", "subscribed", "unsubscribed", "error", "unknown:surprise", "unknown:raw"]);
  });

  test("names the server rejected are not subscribed again", () => {
    const ws = client();
    ws.subscribeSymbols(["BTCUSDT", "NOPEUSDT"]);
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "error", code: 4004, message: "Unknown or disabled symbol(s): NOPEUSDT", invalid: ["NOPEUSDT"] });
    assert.deepEqual(ws.subscriptions.symbols, ["BTCUSDT"]);
  });

  test("close() stops reconnecting; connect() starts again", () => {
    const ws = client();
    ws.connect();
    latest().serverOpen();
    ws.close();
    assert.equal(ws.state, State.STOPPED);
    mock.timers.tick(600_000);
    assert.equal(FakeWebSocket.instances.length, 1);
    ws.connect();
    assert.equal(FakeWebSocket.instances.length, 2);
  });

  test("a listener that throws does not break the others", () => {
    const reported = [];
    globalThis.reportError = (error) => reported.push(error.message);
    const ws = client();
    const seen = [];
    ws.on("ticker", () => {
      throw new Error("broken listener");
    });
    ws.on("ticker", (message) => seen.push(message.symbol));
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "ticker", symbol: "BTCUSDT" });
    delete globalThis.reportError;
    assert.deepEqual(seen, ["BTCUSDT"]);
    assert.deepEqual(reported, ["broken listener"]);
  });
});

// --- a server restart (graceful drain): 1012 -----------------------------------------------------

describe("service restart (1012)", () => {
  /** A client on orders at position E:3 that the server closed with 1012; `random` picks its delay. */
  function restartedClient(random, options = {}) {
    const ws = client({ random, restartSpread: 5, ...options });
    const states = [];
    ws.on("state", (detail) => states.push(detail));
    ws.subscribe(["orders"]);
    ws.connect();
    const socket = latest();
    socket.serverOpen();
    socket.serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 2 } } });
    socket.serverSend(order(3));
    socket.serverSend({ type: "error", code: 1012, message: "Server restarting: reconnect" });
    socket.serverClose(1012, "");
    return { ws, socket, delay: states.at(-1).delay, state: states.at(-1) };
  }

  test("reconnects after a random delay within restartSpread, not at once", () => {
    const { ws, socket, delay, state } = restartedClient(() => 0.5);
    assert.equal(state.state, State.RECONNECTING);
    assert.equal(state.code, 1012);
    assert.equal(delay, 2500);
    mock.timers.tick(2499);
    assert.equal(latest(), socket, "no new socket before the delay");
    mock.timers.tick(1);
    assert.notEqual(latest(), socket);
    assert.equal(ws.state, State.CONNECTING);
  });

  test("the clients of one instance spread their reconnects over restartSpread", () => {
    const randoms = [0.05, 0.3, 0.55, 0.8, 0.999];
    const delays = randoms.map((value) => restartedClient(() => value).delay);
    assert.deepEqual(delays, [250, 1500, 2750, 4000, 4995]);
    assert.ok(delays.every((delay) => delay <= 5000));
    assert.equal(new Set(delays).size, delays.length, "not all at once");
  });

  test("by default the spread is wider than the ordinary first backoff step", () => {
    const ws = new TradingWebSocket({ url: "ws://gateway.test/ws/trading", random: () => 1 });
    const delays = [];
    ws.on("state", ({ state, delay }) => state === State.RECONNECTING && delays.push(delay));
    ws.connect();
    latest().serverOpen();
    latest().serverClose(1012);
    ws.close();
    ws.connect();
    latest().serverOpen();
    latest().serverClose(1006);
    assert.deepEqual(delays, [5000, 500]);
  });

  test("the reconnect resumes with since, from the last event seen", () => {
    const { ws } = restartedClient(() => 0.2);
    mock.timers.tick(1000);
    latest().serverOpen();
    assert.deepEqual(latest().sent, [{ type: "subscribe", channels: ["orders"], since: { orders: { epoch: "E", seq: 3 } } }]);
    const seen = [];
    ws.on("order_update", (message) => seen.push(message.seq));
    latest().serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 5 } }, recovered: { orders: true } });
    serverSendBatch(latest(), [order(3), order(4), order(5)]);
    assert.deepEqual(seen, [4, 5]);
    assert.equal(ws.recovered, true);
  });

  test("a second 1012 in a row (another instance draining too) backs off further", () => {
    const { ws, delay } = restartedClient(() => 1, { reconnectTimeout: 60 });
    assert.equal(delay, 5000);
    mock.timers.tick(delay);
    const delays = [];
    ws.on("state", (detail) => detail.state === State.RECONNECTING && delays.push(detail.delay));
    latest().serverOpen();
    latest().serverClose(1012); // refused before any answer: still the same run of attempts
    assert.deepEqual(delays, [10_000]);
  });
});

// --- recovery: positions, since, gaps, checksums, batches, in-band token refresh ------------------

/** A frame holding several messages, as the server sends them to a ?batch=1 client. */
function serverSendBatch(socket, messages) {
  socket.onmessage?.({ data: JSON.stringify(messages.map((m) => ({ timestamp: "2024-01-01T00:00:00.000Z", ...m }))) });
}

function order(seq, id = seq) {
  return { type: "order_update", order_id: String(id), status: "filled", seq };
}

/** An unsigned JWT-shaped token expiring at `exp` (epoch seconds); the client only reads `exp`. */
function tokenExpiringAt(exp, name = "t") {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "HS256" })}.${encode({ exp, token_type: "access", name })}.signature`;
}

// Kraken's documented example (Book checksum, WebSocket v2): top 10 levels and its checksum.
const KRAKEN_BIDS = [
  ["45283.5", "0.10000000"], ["45283.4", "1.54582015"], ["45282.1", "0.10000000"], ["45281.0", "0.10000000"],
  ["45280.3", "1.54592586"], ["45279.0", "0.07990000"], ["45277.6", "0.03310103"], ["45277.5", "0.30000000"],
  ["45277.3", "1.54602737"], ["45276.6", "0.15445238"],
];
const KRAKEN_ASKS = [
  ["45285.2", "0.00100000"], ["45286.4", "1.54571953"], ["45286.6", "1.54571109"], ["45289.6", "1.54560911"],
  ["45290.2", "0.15890660"], ["45291.8", "1.54553491"], ["45294.7", "0.04454749"], ["45296.1", "0.35380000"],
  ["45297.5", "0.09945542"], ["45299.5", "0.18772827"],
];

/** Let `ms` pass on a healthy link: the server's heartbeat keeps the watchdog quiet. */
async function live(ms) {
  for (let left = ms; left > 0; left -= 10_000) {
    mock.timers.tick(Math.min(10_000, left));
    latest().serverSend({ type: "heartbeat" });
    await flush();
  }
}

function market() {
  return new TradingWebSocket({ url: "ws://gateway.test/ws/market", random: () => 1 });
}

describe("checksums", () => {
  test("crc32 is zlib's", () => {
    assert.equal(crc32(""), 0);
    assert.equal(crc32("50135025500125499100"), 2689702818); // zlib.crc32(b"50135025500125499100")
  });

  test("the book checksum matches Kraken's documented example", () => {
    assert.equal(bookChecksum(KRAKEN_BIDS, KRAKEN_ASKS), 3310070434);
  });

  test("the book checksum takes asks then bids, dots and leading zeros removed", () => {
    const bids = [["0.0500", "12.5"], ["0.0499", "0.00100"]];
    const asks = [["0.0501", "3"], ["0.0502", "0.5"]];
    assert.equal(bookChecksum(bids, asks), crc32("501" + "3" + "502" + "5" + "500" + "125" + "499" + "100"));
  });
});

describe("recovery", () => {
  test("asks the server for batched frames", () => {
    assert.equal(new URL(client().url).searchParams.get("batch"), "1");
    assert.equal(new URL(client({ batch: false }).url).searchParams.get("batch"), null);
  });

  test("a batched frame delivers its messages in order", () => {
    const ws = client();
    const seen = [];
    ws.on("order_update", (message) => seen.push(message.seq));
    ws.connect();
    latest().serverOpen();
    serverSendBatch(latest(), [order(1), order(2), order(3)]);
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test("positions come from the ack and every event, and a reconnect resumes with since", () => {
    const ws = client();
    ws.subscribe(["orders", "portfolio"]);
    ws.connect();
    latest().serverOpen();
    latest().serverSend({
      type: "subscribed",
      channels: ["orders", "portfolio"],
      positions: { orders: { epoch: "E1", seq: 4 }, portfolio: { epoch: "E2", seq: 0 } },
    });
    latest().serverSend(order(5));
    latest().serverSend(order(6));
    assert.deepEqual(ws.position("channels", "orders"), { epoch: "E1", seq: 6 });
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    assert.deepEqual(latest().sent[0], {
      type: "subscribe",
      channels: ["orders", "portfolio"],
      since: { orders: { epoch: "E1", seq: 6 }, portfolio: { epoch: "E2", seq: 0 } },
    });
  });

  test("a successful resume keeps the position so the missed events that follow are delivered once", () => {
    const ws = client();
    const seen = [];
    const recoveries = [];
    ws.on("order_update", (message) => seen.push(message.seq));
    ws.on("recovery", (detail) => recoveries.push(detail));
    ws.subscribe(["orders"]);
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 2 } } });
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    latest().serverSend({
      type: "subscribed",
      channels: ["orders"],
      positions: { orders: { epoch: "E", seq: 5 } },
      recovered: { orders: true },
    });
    serverSendBatch(latest(), [order(3), order(4), order(5), order(4), order(6)]);
    assert.deepEqual(seen, [3, 4, 5, 6]); // the repeated 4 is dropped
    assert.equal(ws.recovered, true);
    assert.deepEqual(recoveries, [{ recovered: true, lost: [], results: { "channels:orders": true } }]);
  });

  test("a resume the server cannot serve is reported and the ack's position is taken", () => {
    const ws = client();
    const recoveries = [];
    ws.on("recovery", (detail) => recoveries.push(detail));
    ws.subscribe(["orders"]);
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 2 } } });
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    latest().serverSend({
      type: "subscribed",
      channels: ["orders"],
      positions: { orders: { epoch: "NEW", seq: 0 } },
      recovered: { orders: false },
    });
    assert.equal(ws.recovered, false);
    assert.deepEqual(ws.resumeLost, ["channels:orders"]);
    assert.deepEqual(recoveries.at(-1), { recovered: false, lost: ["channels:orders"], results: { "channels:orders": false } });
    assert.deepEqual(ws.position("channels", "orders"), { epoch: "NEW", seq: 0 });
    // The next successful resume clears the report.
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    assert.deepEqual(latest().sent[0].since, { orders: { epoch: "NEW", seq: 0 } });
    latest().serverSend({ type: "subscribed", channels: ["orders"], recovered: { orders: true } });
    assert.equal(ws.recovered, true);
  });

  test("a jump in seq is reported as a gap", () => {
    const ws = client();
    const gaps = [];
    ws.on("gap", (detail) => gaps.push(detail));
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 0 } } });
    latest().serverSend(order(1));
    latest().serverSend(order(4));
    assert.deepEqual(gaps, [{ kind: "channels", name: "orders", from: 2, to: 3 }]);
  });

  test("a count that starts again at 1 is taken as a new history, not as a duplicate", () => {
    const ws = client();
    const seen = [];
    const resets = [];
    ws.on("order_update", (message) => seen.push(message.seq));
    ws.on("reset", (detail) => resets.push(detail));
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", channels: ["orders"], positions: { orders: { epoch: "E", seq: 7 } } });
    latest().serverSend(order(1));
    assert.deepEqual(seen, [1]);
    assert.deepEqual(resets, [{ kind: "channels", name: "orders" }]);
    assert.deepEqual(ws.position("channels", "orders"), { epoch: null, seq: 1 });
  });

  test("trades resume with since by symbol; tickers and books do not", () => {
    const ws = market();
    ws.subscribeTrades(["BTCUSDT"]).subscribeOrderbook(["BTCUSDT"]).subscribeTicker(["ETHUSDT"]);
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "subscribed", stream: "trades", symbols: ["BTCUSDT"], positions: { BTCUSDT: { epoch: "T", seq: 10 } } });
    latest().serverSend({ type: "trade", symbol: "BTCUSDT", price: "1", quantity: "1", side: "buy", seq: 11 });
    latest().serverSend({ type: "ticker", symbol: "ETHUSDT", seq: 500 });
    latest().serverClose(1006);
    mock.timers.tick(60_000);
    latest().serverOpen();
    const sent = Object.fromEntries(latest().sent.map((m) => [m.type, m]));
    assert.deepEqual(sent.subscribe_trades.since, { BTCUSDT: { epoch: "T", seq: 11 } });
    assert.equal(sent.subscribe_orderbook.since, undefined);
    assert.equal(sent.subscribe_ticker.since, undefined);
  });

  test("market gaps are detected and an older state is dropped", () => {
    const ws = market();
    const gaps = [];
    const prices = [];
    ws.on("gap", (detail) => gaps.push(detail));
    ws.on("ticker", (message) => prices.push(message.price));
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "ticker", symbol: "BTCUSDT", price: "1", seq: 100 });
    latest().serverSend({ type: "ticker", symbol: "BTCUSDT", price: "0", seq: 99 }); // a snapshot older than live
    latest().serverSend({ type: "ticker", symbol: "BTCUSDT", price: "3", seq: 103 });
    assert.deepEqual(prices, ["1", "3"]);
    assert.deepEqual(gaps, [{ kind: "ticker", name: "BTCUSDT", from: 101, to: 102 }]);
  });

  test("a book whose checksum is right is delivered", () => {
    const ws = market();
    const books = [];
    ws.on("orderbook", (message) => books.push(message));
    ws.connect();
    latest().serverOpen();
    latest().serverSend({ type: "orderbook", symbol: "BTCUSDT", bids: KRAKEN_BIDS, asks: KRAKEN_ASKS, checksum: 3310070434, seq: 1 });
    assert.equal(books.length, 1);
  });

  test("a corrupted book is detected, never delivered, and that book is resubscribed", () => {
    const ws = market();
    const books = [];
    const mismatches = [];
    ws.on("orderbook", (message) => books.push(message));
    ws.on("checksum_mismatch", (detail) => mismatches.push(detail));
    ws.subscribeOrderbook(["BTCUSDT", "ETHUSDT"]);
    ws.connect();
    latest().serverOpen();
    const corrupted = KRAKEN_BIDS.map((level) => [...level]);
    corrupted[3][1] = "0.10000001"; // one quantity changed in transit
    latest().serverSend({ type: "orderbook", symbol: "BTCUSDT", bids: corrupted, asks: KRAKEN_ASKS, checksum: 3310070434, seq: 2 });
    assert.equal(books.length, 0);
    assert.equal(mismatches.length, 1);
    assert.equal(mismatches[0].symbol, "BTCUSDT");
    assert.equal(mismatches[0].expected, 3310070434);
    assert.notEqual(mismatches[0].actual, 3310070434);
    assert.deepEqual(latest().sent.slice(-2), [
      { type: "unsubscribe_orderbook", symbols: ["BTCUSDT"] },
      { type: "subscribe_orderbook", symbols: ["BTCUSDT"] },
    ]);
    assert.deepEqual(ws.subscriptions.orderbook, ["BTCUSDT", "ETHUSDT"]); // still wanted
  });

  test("the access token is refreshed in-band a minute before it expires", async () => {
    const now = Math.floor(Date.now() / 1000);
    const first = tokenExpiringAt(now + 300, "first");
    const second = tokenExpiringAt(now + 600, "second");
    const refreshed = [];
    const ws = client({ getToken: async () => first, refreshToken: async () => second });
    ws.on("token_refreshed", (detail) => refreshed.push(detail));
    ws.connect();
    await flush();
    latest().serverOpen();
    await live(239_000);
    assert.equal(latest().sent.filter((m) => m.type === "refresh").length, 0);
    await live(1_000);
    assert.deepEqual(latest().sent.at(-1), { type: "refresh", token: second });
    latest().serverSend({ type: "refreshed", expires_at: new Date((now + 600) * 1000).toISOString() });
    assert.equal(refreshed.length, 1);
    assert.equal(refreshed[0].expiresAt, (now + 600) * 1000);
    assert.equal(FakeWebSocket.instances.length, 1); // no reconnect
    await live(300_000); // the next one a minute before the new expiry
    assert.equal(latest().sent.filter((m) => m.type === "refresh").length, 2);
  });

  test("without a refreshToken callback the in-band refresh asks getToken for a fresh token", async () => {
    const now = Math.floor(Date.now() / 1000);
    const calls = [];
    const ws = client({
      getToken: async ({ refresh }) => {
        calls.push(refresh);
        return tokenExpiringAt(now + 300, String(calls.length));
      },
    });
    ws.connect();
    await flush();
    latest().serverOpen();
    await live(240_000);
    assert.deepEqual(calls, [false, true]);
    assert.equal(latest().sent.at(-1).type, "refresh");
  });

  test("a refused refresh is reported and the connection is kept", async () => {
    const now = Math.floor(Date.now() / 1000);
    const failures = [];
    const ws = client({ getToken: async () => tokenExpiringAt(now + 300), refreshToken: async () => "bad" });
    ws.on("token_refresh_failed", (detail) => failures.push(detail));
    ws.connect();
    await flush();
    latest().serverOpen();
    await live(240_000);
    latest().serverSend({ type: "error", code: 4001, message: "Token belongs to another user" });
    assert.equal(failures.length, 1);
    assert.equal(ws.state, State.OPEN);
  });

  test("jwtExpiry reads exp in ms and refuses what is not a JWT", () => {
    assert.equal(jwtExpiry(tokenExpiringAt(1_700_000_300)), 1_700_000_300_000);
    assert.equal(jwtExpiry("not-a-token"), null);
    assert.equal(jwtExpiry(null), null);
  });
});
