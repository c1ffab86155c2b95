// Unit tests of static/js/trading-ws.js with a fake WebSocket and Node's mocked timers.
// Run: node --test tests/browser/js/   (tests/browser/test_client_js.py runs them under pytest)

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { State, TradingWebSocket, backoffDelay } from "../../../static/js/trading-ws.js";

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
