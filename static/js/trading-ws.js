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
 *   1012  the server is restarting (a graceful drain): reconnect after a random delay of up to
 *         `restartSpread` seconds, so its clients do not all arrive at the other instances at once
 * A link that goes silent (no message, not even the server's heartbeat) is probed with a ping and
 * then dropped and reconnected: a half-open TCP connection never fires "close" by itself.
 *
 * No lost events: the client remembers a position ({ epoch, seq }) per trading channel and per
 * market stream and symbol, from the `subscribed` acks' `positions` and from every message's `seq`.
 * Every reconnect resubscribes with `since` (trading channels and trades), so the server sends
 * exactly what was missed, or `recovered: false` and a snapshot: then "recovery" is emitted with
 * recovered false and `resumeLost` lists what could not be resumed (the page shows it). Messages
 * already seen (seq not above the position) are dropped; a jump in seq emits "gap". Every order book
 * carries a CRC32 `checksum` of its top 10 levels, verified here: a mismatch is never delivered, it
 * emits "checksum_mismatch" and resubscribes that book. On /ws/trading the access token is replaced
 * in-band ({"type":"refresh"}) a minute before it expires, using `refreshToken()`.
 * The client asks for `?batch=1`: a frame may hold a JSON array of messages, handled in order.
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
  "refreshed",
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

/** The trading channel each trading event belongs to, and the market stream of each market message. */
const CHANNEL_OF_TYPE = Object.freeze({
  order_update: "orders",
  risk_alert: "risk_alerts",
  bot_status: "bot_status",
  portfolio: "portfolio",
});
const STREAM_OF_TYPE = Object.freeze({ ticker: "ticker", trade: "trades", orderbook: "orderbook" });
/** Streams that carry state: a new subscription gets a snapshot, so a position is not resumed. */
const STATE_STREAMS = new Set(["ticker", "orderbook"]);
/** The subscription kinds whose positions are resumed with `since`. */
const RESUMABLE_KINDS = new Set(["channels", "trades"]);
const BOOK_RESYNC_INTERVAL_MS = 2000;

const DEFAULTS = {
  getToken: null,
  refreshToken: null, // async () => a new access token, for the in-band refresh; default getToken({ refresh: true })
  refreshMargin: 60, // s before the token expires when it is refreshed in-band
  batch: true, // ask for ?batch=1 (array frames)
  heartbeatInterval: 30, // s: the server's WS_HEARTBEAT_INTERVAL
  staleTimeout: null, // s of silence before the link counts as dead; default 2 x heartbeat + 5
  reconnectTimeout: 60, // s: the backoff cap (WS_RECONNECT_TIMEOUT)
  initialDelay: 0.5, // s: the first backoff step
  connectTimeout: 10, // s for the handshake before the attempt is abandoned
  busyDelay: 5, // s: the least wait after 4003 (too many connections) or 4029 (rate limited)
  restartSpread: 5, // s: reconnects after 1012 (service restart) are spread over this long
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
   * @param {number} [options.restartSpread]  seconds over which reconnects after 1012 are spread
   */
  constructor(options = {}) {
    if (!options.url) throw new TypeError("TradingWebSocket needs a url");
    this.options = { ...DEFAULTS, ...options };
    this.url = withBatch(resolveUrl(options.url), this.options.batch);
    this.state = State.IDLE;
    this.attempt = 0; // failed attempts since the last healthy connection
    this.retryAt = null; // epoch ms of the next attempt while reconnecting
    this.lastMessageAt = 0;
    this.lastClose = null; // { code, reason } of the previous connection
    this._ws = null;
    this._listeners = new Map();
    this._wanted = new Map(Object.keys(LIST_REQUESTS).map((kind) => [kind, new Set()]));
    this._timers = { retry: null, watchdog: null, handshake: null, tokenRefresh: null };
    this._positions = new Map(); // "channels:orders" | "trades:BTCUSDT" | ... -> { epoch, seq }
    this.resumeLost = []; // what the last resume could not recover ("channels:orders", ...)
    this._token = null; // the access token this connection was opened or refreshed with
    this._pendingToken = null; // sent in a `refresh`, not yet confirmed
    this._refreshing = false;
    this._refreshRetried = false;
    this._resynced = new Map(); // symbol -> when its book was last resubscribed after a bad checksum
    this._refreshToken = false;
    this._authFailures = 0;
    this._generation = 0; // guards callbacks of sockets that were replaced
  }

  // --- events -----------------------------------------------------------------------------------

  /**
   * Listen to an event; returns a function that removes the listener. Events: every server message
   * type (see SERVER_MESSAGE_TYPES), "message" (every message), "unknown", and the lifecycle events
   * "state" ({ state, attempt, delay, retryAt, code, reason }), "open", "close" ({ code, reason }),
   * "stale" ({ silentFor }), "stopped" ({ code, reason }); and for recovery: "recovery"
   * ({ recovered, lost, results: { "channels:orders": true, ... } }) after an ack that answered a
   * `since`, "gap" ({ kind, name, from, to }) when seq jumped, "reset" ({ kind, name }) when the
   * server's count started again, "checksum_mismatch" ({ symbol, expected, actual }), and
   * "token_refreshed" ({ expiresAt }) / "token_refresh_failed" ({ reason }).
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
      this._token = token;
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
    this._forgetStatePositions(); // books and tickers come again as snapshots
    this._resubscribe();
    this._armWatchdog();
    this._scheduleTokenRefresh(jwtExpiry(this._token));
  }

  _onClose(ws, event) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._clearTimer("handshake");
    this._clearTimer("watchdog");
    this._clearTimer("tokenRefresh");
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
      case CloseCode.SERVICE_RESTART:
        // Every client of a draining instance hears this at the same moment: full jitter from
        // restartSpread, not from initialDelay, spreads them out; `since` resumes what they miss.
        this._scheduleReconnect(close, { initial: this.options.restartSpread });
        return;
      default:
        this._scheduleReconnect(close);
    }
  }

  _scheduleReconnect(close, { immediate = false, floor = 0, initial = this.options.initialDelay } = {}) {
    this._clearTimer("retry");
    this.attempt += 1;
    const { reconnectTimeout, random } = this.options;
    const delay = immediate ? 0 : backoffDelay(this.attempt, { initial, cap: reconnectTimeout, floor, random });
    this.retryAt = Date.now() + delay;
    this._setState(State.RECONNECTING, { delay, code: close.code, reason: close.reason });
    this._timers.retry = setTimeout(() => this._open(), delay);
  }

  /** Drop a link that is dead or stuck: the browser may take minutes to notice by itself. */
  _linkLost(ws, reason) {
    if (ws !== this._ws) return;
    this._dropSocket(CloseCode.STALE, reason);
    this._clearTimer("watchdog");
    this._clearTimer("tokenRefresh");
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
    let parsed;
    try {
      parsed = JSON.parse(event.data);
    } catch {
      this._emit("unknown", { raw: event.data });
      return;
    }
    // With ?batch=1 a frame may carry several messages, in order.
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
      if (ws !== this._ws) return; // a listener closed or replaced the connection
      this._onOneMessage(message, event.data);
    }
  }

  _onOneMessage(message, raw) {
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      this._emit("unknown", { raw });
      return;
    }
    if (message.type === "error") {
      this._onServerError(message);
    } else if (this.attempt !== 0 || this._authFailures !== 0) {
      // A real answer: this connection is healthy, so the next failure starts the backoff afresh.
      this.attempt = 0;
      this._authFailures = 0;
    }
    if (message.type === "subscribed") this._onSubscribed(message);
    else if (message.type === "refreshed") this._onRefreshed(message);
    else if (!this._inSequence(message) || !this._checksumOk(message)) return;
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
    // A refused in-band refresh: the connection keeps its token until it expires (then 4001 and a
    // reconnect with a fresh one); one more try half-way to the expiry.
    if (message.code === CloseCode.AUTH_FAILED && this._refreshing) {
      this._refreshing = false;
      this._emit("token_refresh_failed", { reason: message.message ?? "refused" });
      const expiry = jwtExpiry(this._token);
      if (expiry && !this._refreshRetried) {
        this._refreshRetried = true;
        this._armTokenRefresh(Math.max(1000, (expiry - Date.now()) / 2));
      }
    }
  }

  // --- positions, recovery, gaps --------------------------------------------------------------

  /** The remembered position of a trading channel (kind "channels") or market stream and symbol. */
  position(kind, name) {
    const found = this._positions.get(`${kind}:${name}`);
    return found ? { ...found } : null;
  }

  /** All remembered positions: { "channels:orders": { epoch, seq }, "trades:BTCUSDT": ... }. */
  get positions() {
    return Object.fromEntries([...this._positions].map(([key, value]) => [key, { ...value }]));
  }

  /** True unless the last resume reported something it could not recover. */
  get recovered() {
    return this.resumeLost.length === 0;
  }

  _onSubscribed(message) {
    const kind = ackKind(message);
    if (!kind) return;
    const names = message.channels ?? message.symbols ?? [];
    const positions = message.positions ?? {};
    const results = {};
    for (const name of names) {
      const key = `${kind}:${name}`;
      const given = positions[name];
      const recovered = message.recovered?.[name];
      const mine = this._positions.get(key);
      if (typeof recovered === "boolean") results[key] = recovered;
      if (recovered === true && mine && (!given || given.epoch === mine.epoch)) continue; // the missed events follow
      if (given && typeof given.seq === "number") this._positions.set(key, { epoch: given.epoch ?? null, seq: given.seq });
    }
    if (Object.keys(results).length === 0) return;
    const lost = Object.keys(results).filter((key) => !results[key]);
    const answered = new Set(Object.keys(results));
    this.resumeLost = [...this.resumeLost.filter((key) => !answered.has(key)), ...lost];
    this._emit("recovery", { recovered: lost.length === 0, lost, results });
  }

  /** Track the message's seq; false when it was already seen (a duplicate or an older state). */
  _inSequence(message) {
    if (typeof message.seq !== "number") return true; // snapshots of trading state carry none
    const [kind, name] = sequenceKey(message);
    if (!kind) return true;
    const key = `${kind}:${name}`;
    const known = this._positions.get(key);
    if (!known || typeof known.seq !== "number") {
      this._positions.set(key, { epoch: known?.epoch ?? null, seq: message.seq });
      return true;
    }
    if (message.seq <= known.seq) {
      if (message.seq !== 1 || known.seq <= 1) return false;
      // The server's count started again (its history was lost): the old epoch means nothing now.
      this._positions.set(key, { epoch: null, seq: 1 });
      this._emit("reset", { kind, name });
      return true;
    }
    if (message.seq > known.seq + 1) this._emit("gap", { kind, name, from: known.seq + 1, to: message.seq - 1 });
    known.seq = message.seq;
    return true;
  }

  _forgetStatePositions() {
    for (const key of [...this._positions.keys()]) {
      if (STATE_STREAMS.has(key.split(":")[0]) || key.startsWith("symbols:")) this._positions.delete(key);
    }
  }

  /** An order book whose checksum does not match its levels is wrong: never shown, resubscribed. */
  _checksumOk(message) {
    if (message.type !== "orderbook" || typeof message.checksum !== "number") return true;
    const actual = bookChecksum(message.bids ?? [], message.asks ?? []);
    if (actual === message.checksum) return true;
    this._emit("checksum_mismatch", { symbol: message.symbol, expected: message.checksum, actual });
    this._positions.delete(`orderbook:${message.symbol}`);
    // One resubscribe per book every few seconds: a steady stream of bad books must not flood.
    const last = this._resynced.get(message.symbol) ?? -Infinity;
    if (Date.now() - last < BOOK_RESYNC_INTERVAL_MS) return false;
    this._resynced.set(message.symbol, Date.now());
    const request = LIST_REQUESTS.orderbook;
    this.send({ type: request.unsubscribe, [request.field]: [message.symbol] });
    this.send({ type: request.subscribe, [request.field]: [message.symbol] });
    return false;
  }

  // --- in-band token refresh (/ws/trading) ------------------------------------------------------

  _scheduleTokenRefresh(expiry) {
    this._clearTimer("tokenRefresh");
    if (!expiry || !this._ws) return;
    this._refreshRetried = false;
    // A minute before expiry, but never sooner than half the time left (short-lived tokens).
    const left = expiry - Date.now();
    this._armTokenRefresh(Math.max(left - this.options.refreshMargin * 1000, left / 2, 1000));
  }

  _armTokenRefresh(delay) {
    this._clearTimer("tokenRefresh");
    this._timers.tokenRefresh = setTimeout(() => this._refreshInBand(), Math.max(0, delay));
  }

  async _refreshInBand() {
    const ws = this._ws;
    const fetchToken = this.options.refreshToken ?? (this.options.getToken && (() => this.options.getToken({ refresh: true })));
    if (!fetchToken || !ws) return;
    let token;
    try {
      token = await fetchToken();
    } catch (error) {
      this._emit("token_refresh_failed", { reason: String(error?.message ?? error) });
      return;
    }
    if (ws !== this._ws || !token) return;
    this._pendingToken = token;
    this._refreshing = true;
    this.send({ type: "refresh", token });
  }

  _onRefreshed(message) {
    this._refreshing = false;
    if (this._pendingToken) this._token = this._pendingToken;
    this._pendingToken = null;
    const expiresAt = Date.parse(message.expires_at) || jwtExpiry(this._token);
    this._emit("token_refreshed", { expiresAt });
    this._scheduleTokenRefresh(expiresAt);
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
    if (!subscribe) for (const item of list) this._positions.delete(`${positionKind(kind)}:${item}`);
    this.send({ type: subscribe ? request.subscribe : request.unsubscribe, [request.field]: list });
    return this;
  }

  /** Subscribe again to everything, resuming channels and trades from their positions (`since`). */
  _resubscribe() {
    for (const [kind, items] of this._wanted) {
      if (items.size === 0) continue;
      const request = LIST_REQUESTS[kind];
      const message = { type: request.subscribe, [request.field]: [...items] };
      const since = RESUMABLE_KINDS.has(kind) ? this._since(kind, items) : null;
      if (since) message.since = since;
      this.send(message);
    }
  }

  _since(kind, items) {
    const since = {};
    for (const item of items) {
      const known = this._positions.get(`${kind}:${item}`);
      if (known && typeof known.epoch === "string" && typeof known.seq === "number") {
        since[item] = { epoch: known.epoch, seq: known.seq };
      }
    }
    return Object.keys(since).length > 0 ? since : null;
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

/** The position kind of a subscription kind: tickers on /ws/trading ("symbols") are ticker positions. */
function positionKind(kind) {
  return kind === "symbols" ? "ticker" : kind;
}

/** The position kind a `subscribed` ack is about: "channels", "ticker", "trades" or "orderbook". */
function ackKind(message) {
  if (Array.isArray(message.channels)) return "channels";
  if (typeof message.stream === "string") return message.stream;
  if (Array.isArray(message.symbols)) return "ticker"; // subscribe_symbol on /ws/trading
  return null;
}

/** [kind, name] of the position a message advances, or [null] when it has none. */
function sequenceKey(message) {
  const channel = CHANNEL_OF_TYPE[message.type];
  if (channel) return ["channels", channel];
  const stream = STREAM_OF_TYPE[message.type];
  if (stream && typeof message.symbol === "string") return [stream, message.symbol];
  return [null];
}

/** The `exp` of a JWT in epoch ms (read only to schedule a refresh, never trusted), or null. */
export function jwtExpiry(token) {
  if (typeof token !== "string") return null;
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32 (as zlib.crc32, unsigned) of an ASCII string. */
export function crc32(text) {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i += 1) crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * The server's order book checksum (Kraken's WebSocket v2 book checksum): CRC32 of the top 10 asks
 * then the top 10 bids, best first, each level's price then quantity as sent with "." removed and
 * leading zeros stripped.
 */
export function bookChecksum(bids, asks) {
  const digits = (value) => String(value).replaceAll(".", "").replace(/^0+/, "");
  const side = (levels) => levels.slice(0, 10).map(([price, quantity]) => digits(price) + digits(quantity)).join("");
  return crc32(side(asks) + side(bids));
}

/** The URL with batch=1 added (array frames) when asked for. */
function withBatch(url, batch) {
  if (!batch) return url;
  const parsed = new URL(url);
  parsed.searchParams.set("batch", "1");
  return parsed.href;
}

/** "/ws/market" -> "ws://host/ws/market" (wss:// on an https page); absolute URLs pass through. */
export function resolveUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const base = globalThis.location ?? { protocol: "http:", host: "127.0.0.1:8000" };
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return new URL(url, `${scheme}//${base.host}`).href;
}
