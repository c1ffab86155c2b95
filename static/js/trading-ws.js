/**
 * TradingWebSocket: a browser client for the gateway's /ws/trading and /ws/market endpoints.
 *
 * It never gives up: a lost connection is retried with exponential backoff and full jitter, capped
 * at `reconnectTimeout` seconds, and everything that was subscribed is subscribed again on the new
 * connection (the server answers each subscription with a fresh snapshot). Close codes are acted on:
 *   4001  the token is missing, invalid or expired: ask `getToken({ refresh: true })` for a fresh one
 *   4002  the user is missing or inactive: stop for good (state "stopped")
 *   4003  too many connections for this user: back off before trying again
 *   4008  this client read too slowly: reconnect at once, state is reloaded by the snapshots
 *   4029  rate limited: back off
 * A link that goes silent (no message, not even the server's heartbeat) is probed with a ping and
 * then dropped and reconnected: a half-open TCP connection never fires "close" by itself.
 *
 * Usage:
 *   import { TradingWebSocket } from "/static/js/trading-ws.js";
 *   const ws = new TradingWebSocket({ url: "/ws/trading", getToken: async ({ refresh }) => token });
 *   ws.on("order_update", (message) => render(message));
 *   ws.on("state", ({ state, delay }) => showIndicator(state, delay));
 *   ws.subscribe(["orders", "portfolio"]);
 *   ws.connect();
 */

/** Requests that add or remove items of one kind, and the field that lists the items. */
const LIST_REQUESTS = {
  channels: { subscribe: "subscribe", unsubscribe: "unsubscribe", field: "channels" },
  symbols: { subscribe: "subscribe_symbol", unsubscribe: "unsubscribe_symbol", field: "symbols" },
  ticker: { subscribe: "subscribe_ticker", unsubscribe: "unsubscribe_ticker", field: "symbols" },
  trades: { subscribe: "subscribe_trades", unsubscribe: "unsubscribe_trades", field: "symbols" },
  orderbook: { subscribe: "subscribe_orderbook", unsubscribe: "unsubscribe_orderbook", field: "symbols" },
};

/** Every message type the server sends; anything else is emitted as "unknown". */
export const SERVER_MESSAGE_TYPES = Object.freeze([
  "connection_established",
  "subscribed",
  "unsubscribed",
  "pong",
  "heartbeat",
  "error",
  "ticker",
  "trade",
  "orderbook",
  "order_update",
  "risk_alert",
  "bot_status",
  "portfolio",
]);

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  SERVICE_RESTART: 1012,
  AUTH_FAILED: 4001,
  USER_INACTIVE: 4002,
  TOO_MANY_CONNECTIONS: 4003,
  INVALID_MESSAGE: 4004,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
  STALE: 4000, // sent by this client when it drops a silent link
});

export const State = Object.freeze({
  IDLE: "idle", // constructed, connect() not called yet
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting", // waiting `delay` ms before the next attempt
  STOPPED: "stopped", // close() was called, or the server said 4002, or no token can be had
});

const DEFAULTS = {
  getToken: null,
  heartbeatInterval: 30, // s: the server's WS_HEARTBEAT_INTERVAL
  staleTimeout: null, // s of silence before the link counts as dead; default 2 x heartbeat + 5
  reconnectTimeout: 60, // s: the backoff cap (WS_RECONNECT_TIMEOUT)
  initialDelay: 0.5, // s: the first backoff step
  connectTimeout: 10, // s for the handshake before the attempt is abandoned
  busyDelay: 5, // s: the least wait after 4003 (too many connections) or 4029 (rate limited)
  random: Math.random,
};

/**
 * The delay in ms before reconnect attempt `attempt` (1, 2, ...): exponential with full jitter,
 * never above `cap` seconds and never below `floor` seconds. Pure, exported for tests.
 */
export function backoffDelay(attempt, { initial = 0.5, cap = 60, floor = 0, random = Math.random } = {}) {
  const ceiling = Math.min(cap, initial * 2 ** Math.max(0, attempt - 1));
  const seconds = Math.max(floor, ceiling * random());
  return Math.round(Math.min(cap, Math.max(seconds, 0.1)) * 1000);
}

export class TradingWebSocket {
  /**
   * @param {object} options
   * @param {string} options.url  "/ws/market", "/ws/trading" or an absolute ws(s):// URL
   * @param {function} [options.getToken]  async ({ refresh }) => access token, or null to stop;
   *   called before every connection, with refresh true after the server refused the token (4001)
   * @param {number} [options.heartbeatInterval]  seconds; the server's heartbeat interval
   * @param {number} [options.staleTimeout]  seconds of silence after which the link is dropped
   * @param {number} [options.reconnectTimeout]  seconds; the longest wait between attempts
   * @param {number} [options.initialDelay]  seconds; the first backoff step
   * @param {number} [options.connectTimeout]  seconds for the opening handshake
   */
  constructor(options = {}) {
    if (!options.url) throw new TypeError("TradingWebSocket needs a url");
    this.options = { ...DEFAULTS, ...options };
    this.url = resolveUrl(options.url);
    this.state = State.IDLE;
    this.attempt = 0; // failed attempts since the last healthy connection
    this.retryAt = null; // epoch ms of the next attempt while reconnecting
    this.lastMessageAt = 0;
    this.lastClose = null; // { code, reason } of the previous connection
    this._ws = null;
    this._listeners = new Map();
    this._wanted = new Map(Object.keys(LIST_REQUESTS).map((kind) => [kind, new Set()]));
    this._timers = { retry: null, watchdog: null, handshake: null };
    this._refreshToken = false;
    this._authFailures = 0;
    this._generation = 0; // guards callbacks of sockets that were replaced
  }

  // --- events -----------------------------------------------------------------------------------

  /**
   * Listen to an event; returns a function that removes the listener. Events: every server message
   * type (see SERVER_MESSAGE_TYPES), "message" (every message), "unknown", and the lifecycle events
   * "state" ({ state, attempt, delay, retryAt, code, reason }), "open", "close" ({ code, reason }),
   * "stale" ({ silentFor }), "stopped" ({ code, reason }).
   */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  _emit(type, detail) {
    for (const listener of [...(this._listeners.get(type) ?? [])]) {
      try {
        listener(detail, this);
      } catch (error) {
        // A broken listener must not break the connection or the other listeners: report it
        // as an uncaught error (it shows in the console) and carry on.
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else
          setTimeout(() => {
            throw error;
          }, 0);
      }
    }
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, attempt: this.attempt, retryAt: this.retryAt, ...extra });
  }

  // --- lifecycle --------------------------------------------------------------------------------

  /** Start (or restart after close()) connecting; reconnects by itself until close(). */
  connect() {
    if (this.state === State.CONNECTING || this.state === State.OPEN) return this;
    this._clearTimer("retry");
    this.attempt = 0;
    this._open();
    return this;
  }

  /** Close for good: no reconnect until connect() is called again. */
  close(code = CloseCode.NORMAL, reason = "client closed") {
    this._clearTimers();
    this.retryAt = null;
    this._dropSocket(code, reason);
    this._setState(State.STOPPED, { code, reason });
    this._emit("stopped", { code, reason });
  }

  /** Reconnect now instead of waiting out the backoff (e.g. when the browser comes back online). */
  reconnectNow() {
    if (this.state !== State.RECONNECTING) return;
    this._clearTimer("retry");
    this._open();
  }

  get connected() {
    return this.state === State.OPEN;
  }

  async _open() {
    const generation = ++this._generation;
    this.retryAt = null;
    this._setState(State.CONNECTING);
    let protocols;
    if (this.options.getToken) {
      let token;
      try {
        token = await this.options.getToken({ refresh: this._refreshToken });
      } catch (error) {
        if (generation !== this._generation) return;
        this._scheduleReconnect({ code: null, reason: `no token: ${error.message ?? error}` });
        return;
      }
      if (generation !== this._generation) return;
      if (!token) {
        this.close(CloseCode.AUTH_FAILED, "signed out");
        return;
      }
      this._refreshToken = false;
      // Browsers cannot set headers: the token travels as the subprotocol pair "bearer, <token>".
      protocols = ["bearer", token];
    }
    let ws;
    try {
      ws = protocols ? new WebSocket(this.url, protocols) : new WebSocket(this.url);
    } catch (error) {
      this._scheduleReconnect({ code: null, reason: String(error.message ?? error) });
      return;
    }
    this._ws = ws;
    this._timers.handshake = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) this._linkLost(ws, "handshake timed out");
    }, this.options.connectTimeout * 1000);
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // always followed by "close", where it is handled
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    this._clearTimer("handshake");
    this.lastMessageAt = Date.now();
    this._setState(State.OPEN);
    this._emit("open", { url: this.url, attempt: this.attempt });
    this._resubscribe();
    this._armWatchdog();
  }

  _onClose(ws, event) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._clearTimer("handshake");
    this._clearTimer("watchdog");
    const close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
    this.lastClose = close;
    this._emit("close", close);
    if (this.state === State.STOPPED) return;
    this._afterClose(close);
  }

  /** What to do after the server (or the network) closed the connection. */
  _afterClose(close) {
    switch (close.code) {
      case CloseCode.USER_INACTIVE:
        this.close(close.code, close.reason || "user not found or inactive");
        return;
      case CloseCode.AUTH_FAILED:
        if (!this.options.getToken) {
          this.close(close.code, close.reason || "authentication required");
          return;
        }
        // A fresh token at once; if the server keeps refusing fresh ones, back off as usual.
        this._refreshToken = true;
        this._authFailures += 1;
        this._scheduleReconnect(close, { immediate: this._authFailures === 1 });
        return;
      case CloseCode.TOO_MANY_CONNECTIONS:
      case CloseCode.RATE_LIMITED:
        this._scheduleReconnect(close, { floor: this.options.busyDelay });
        return;
      case CloseCode.SLOW_CONSUMER:
        this._scheduleReconnect(close, { immediate: this.attempt === 0 });
        return;
      default:
        this._scheduleReconnect(close);
    }
  }

  _scheduleReconnect(close, { immediate = false, floor = 0 } = {}) {
    this._clearTimer("retry");
    this.attempt += 1;
    const { initialDelay, reconnectTimeout, random } = this.options;
    const delay = immediate
      ? 0
      : backoffDelay(this.attempt, { initial: initialDelay, cap: reconnectTimeout, floor, random });
    this.retryAt = Date.now() + delay;
    this._setState(State.RECONNECTING, { delay, code: close.code, reason: close.reason });
    this._timers.retry = setTimeout(() => this._open(), delay);
  }

  /** Drop a link that is dead or stuck: the browser may take minutes to notice by itself. */
  _linkLost(ws, reason) {
    if (ws !== this._ws) return;
    this._dropSocket(CloseCode.STALE, reason);
    this._clearTimer("watchdog");
    const close = { code: CloseCode.ABNORMAL, reason, wasClean: false };
    this.lastClose = close;
    this._emit("close", close);
    this._scheduleReconnect(close);
  }

  _dropSocket(code, reason) {
    const ws = this._ws;
    this._ws = null;
    this._generation += 1;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason.slice(0, 120));
    } catch {
      ws.close();
    }
  }

  // --- silent links ---------------------------------------------------------------------------

  get staleAfterMs() {
    const { staleTimeout, heartbeatInterval } = this.options;
    return (staleTimeout ?? heartbeatInterval * 2 + 5) * 1000;
  }

  /**
   * The server sends a heartbeat after `heartbeatInterval` seconds of silence, so silence well past
   * that means a dead link: ping once after the heartbeat is overdue, drop the link at staleAfterMs.
   */
  _armWatchdog() {
    this._clearTimer("watchdog");
    const ws = this._ws;
    const probeAfter = Math.min(this.options.heartbeatInterval * 1000 + 2000, this.staleAfterMs / 2);
    let probed = false;
    const check = () => {
      if (ws !== this._ws || ws.readyState !== WebSocket.OPEN) return;
      const silentFor = Date.now() - this.lastMessageAt;
      if (silentFor >= this.staleAfterMs) {
        this._emit("stale", { silentFor });
        this._linkLost(ws, `no message for ${Math.round(silentFor / 1000)} s`);
        return;
      }
      if (silentFor >= probeAfter && !probed) {
        probed = true;
        this.ping();
      } else if (silentFor < probeAfter) {
        probed = false;
      }
      this._timers.watchdog = setTimeout(check, 1000);
    };
    this._timers.watchdog = setTimeout(check, 1000);
  }

  // --- messages ---------------------------------------------------------------------------------

  _onMessage(ws, event) {
    if (ws !== this._ws) return;
    this.lastMessageAt = Date.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      this._emit("unknown", { raw: event.data });
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      this._emit("unknown", { raw: event.data });
      return;
    }
    if (message.type === "error") {
      this._onServerError(message);
    } else if (this.attempt !== 0 || this._authFailures !== 0) {
      // A real answer: this connection is healthy, so the next failure starts the backoff afresh.
      this.attempt = 0;
      this._authFailures = 0;
    }
    this._emit("message", message);
    this._emit(SERVER_MESSAGE_TYPES.includes(message.type) ? message.type : "unknown", message);
  }

  _onServerError(message) {
    // A request naming unknown channels or symbols is rejected whole: forget those names so they
    // are not sent again after every reconnect.
    if (message.code === CloseCode.INVALID_MESSAGE && Array.isArray(message.invalid)) {
      for (const items of this._wanted.values()) {
        for (const name of message.invalid) items.delete(name);
      }
    }
  }

  /** Send a JSON message now; returns false when the socket is not open (nothing is queued). */
  send(message) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  ping() {
    return this.send({ type: "ping" });
  }

  // --- subscriptions (remembered and replayed after every reconnect) ----------------------------

  /** Trading channels: "orders", "risk_alerts", "bot_status", "portfolio". */
  subscribe(channels) {
    return this._change("channels", channels, true);
  }

  unsubscribe(channels) {
    return this._change("channels", channels, false);
  }

  /** Tickers on /ws/trading. */
  subscribeSymbols(symbols) {
    return this._change("symbols", symbols, true);
  }

  unsubscribeSymbols(symbols) {
    return this._change("symbols", symbols, false);
  }

  /** Market streams on /ws/market. */
  subscribeTicker(symbols) {
    return this._change("ticker", symbols, true);
  }

  unsubscribeTicker(symbols) {
    return this._change("ticker", symbols, false);
  }

  subscribeTrades(symbols) {
    return this._change("trades", symbols, true);
  }

  unsubscribeTrades(symbols) {
    return this._change("trades", symbols, false);
  }

  subscribeOrderbook(symbols) {
    return this._change("orderbook", symbols, true);
  }

  unsubscribeOrderbook(symbols) {
    return this._change("orderbook", symbols, false);
  }

  /** What this client keeps subscribed, by kind: { channels: [...], ticker: [...], ... }. */
  get subscriptions() {
    return Object.fromEntries([...this._wanted].map(([kind, items]) => [kind, [...items]]));
  }

  _change(kind, items, subscribe) {
    const wanted = this._wanted.get(kind);
    const list = [...new Set(items)].filter((item) => subscribe !== wanted.has(item));
    if (list.length === 0) return this;
    for (const item of list) {
      if (subscribe) wanted.add(item);
      else wanted.delete(item);
    }
    const request = LIST_REQUESTS[kind];
    this.send({ type: subscribe ? request.subscribe : request.unsubscribe, [request.field]: list });
    return this;
  }

  _resubscribe() {
    for (const [kind, items] of this._wanted) {
      if (items.size === 0) continue;
      const request = LIST_REQUESTS[kind];
      this.send({ type: request.subscribe, [request.field]: [...items] });
    }
  }

  // --- timers -----------------------------------------------------------------------------------

  _clearTimer(name) {
    clearTimeout(this._timers[name]);
    this._timers[name] = null;
  }

  _clearTimers() {
    for (const name of Object.keys(this._timers)) this._clearTimer(name);
  }
}

/** "/ws/market" -> "ws://host/ws/market" (wss:// on an https page); absolute URLs pass through. */
export function resolveUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const base = globalThis.location ?? { protocol: "http:", host: "127.0.0.1:8000" };
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return new URL(url, `${scheme}//${base.host}`).href;
}
