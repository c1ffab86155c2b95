/**
 * The demo trading screen: wires the market panel, the sign-in form and the trading panel to two
 * TradingWebSocket clients (/ws/market for everyone, /ws/trading once signed in).
 */

import { AccountPanel } from "./account.js";
import { Session, fetchStatus } from "./api.js";
import { byId, setText, toast } from "./dom.js";
import { MarketPanel } from "./market.js";
import { State, TradingWebSocket } from "./trading-ws.js";

const STATUS_POLL_MS = 5_000; // how soon the page notices the feed stopped
const TRADING_CHANNELS = ["orders", "risk_alerts", "bot_status", "portfolio"];
const QUIET_ERROR_CODES = new Set([4001, 4002, 4003]); // shown by the indicator, not as toasts

const config = JSON.parse(byId("client-config").textContent);
const socketOptions = {
  heartbeatInterval: config.heartbeatInterval,
  reconnectTimeout: config.reconnectTimeout,
};

// --- connection indicators ---------------------------------------------------------------------

/** Show a client's state on an indicator: connected / reconnecting in N s / offline. */
function bindIndicator(element, socket) {
  const text = element.querySelector(".text");
  let countdown = null;
  const render = () => {
    clearInterval(countdown);
    countdown = null;
    const state = navigator.onLine ? socket.state : "offline";
    element.dataset.state = state;
    if (state === State.RECONNECTING) {
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
        setText(text, seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…");
      };
      tick();
      countdown = setInterval(tick, 250);
      const code = socket.lastClose?.code;
      element.title = code ? `last close: ${code} ${socket.lastClose.reason ?? ""}`.trim() : "";
      return;
    }
    // A resume the server could not serve: the snapshot replaced the state, events may be missing.
    const resumed = socket.recovered !== false;
    element.dataset.recovered = String(resumed);
    element.title = resumed ? "" : `could not resume ${socket.resumeLost.join(", ")}: state reloaded from a snapshot`;
    const labels = {
      [State.IDLE]: "idle",
      [State.CONNECTING]: "connecting…",
      [State.OPEN]: resumed ? "connected" : "connected (not resumed)",
      [State.STOPPED]: "offline",
      offline: "offline",
    };
    setText(text, labels[state] ?? state);
  };
  socket.on("state", render);
  socket.on("recovery", render);
  window.addEventListener("online", render);
  window.addEventListener("offline", render);
  render();
}

// --- market data status (simulated badge, stale data) -----------------------------------------

let lastStatus = null;

async function refreshStatus() {
  lastStatus = await fetchStatus();
  renderFeed();
}

/**
 * Prices on screen are live only while both the page's socket and the server's feed are: otherwise
 * the watchlist is greyed and a badge says why. The simulated badge stays as long as the data shown
 * came from the simulator, feed or no feed.
 */
function renderFeed() {
  const feed = lastStatus?.market_data;
  byId("simulated-badge").hidden = !feed?.simulated;
  const badge = byId("feed-badge");
  let problem = null;
  if (lastStatus && feed?.connected === false) problem = "Market feed offline";
  else if (feed?.stale) problem = `Prices stale${feed.data_age_seconds != null ? ` (${Math.round(feed.data_age_seconds)} s old)` : ""}`;
  badge.hidden = problem === null;
  if (problem) setText(badge, problem);
  const shown = market.tickers.size > 0; // nothing on screen yet: nothing to call stale
  const stale = problem !== null || (shown && marketSocket.state !== State.OPEN);
  document.body.classList.toggle("market-stale", stale);
  byId("stale-tag").hidden = !stale;
}

// --- market ------------------------------------------------------------------------------------

const marketSocket = new TradingWebSocket({ url: "/ws/market", ...socketOptions });
bindIndicator(byId("market-conn"), marketSocket);
const market = new MarketPanel(marketSocket, config.symbols);
marketSocket.on("error", (message) => {
  toast(`Market data: error ${message.code}`, message.message ?? "", "warning");
});
marketSocket.on("open", refreshStatus);
marketSocket.on("state", renderFeed);
marketSocket.connect();
refreshStatus();
setInterval(refreshStatus, STATUS_POLL_MS);

// --- sign in and the trading panel -------------------------------------------------------------

let tradingSocket = null;
let account = null;

const session = new Session({ onChange: () => renderSession() });

function startTrading() {
  tradingSocket = new TradingWebSocket({
    url: "/ws/trading",
    getToken: (options) => session.token(options),
    refreshToken: () => session.token({ refresh: true }), // in-band, a minute before expiry
    ...socketOptions,
  });
  bindIndicator(byId("trading-conn"), tradingSocket);
  account = new AccountPanel({ session, socket: tradingSocket, market, symbols: config.symbols });
  tradingSocket.on("error", (message) => {
    if (!QUIET_ERROR_CODES.has(message.code)) toast(`Trading: error ${message.code}`, message.message ?? "", "warning");
  });
  tradingSocket.on("stopped", ({ code, reason }) => {
    if (code === 4002) toast("Signed out", reason || "This user is missing or inactive", "danger", 0);
  });
  tradingSocket.subscribe(TRADING_CHANNELS);
  tradingSocket.connect();
  account.load();
}

function stopTrading() {
  tradingSocket?.close(1000, "signed out");
  account?.reset();
  tradingSocket = null;
  account = null;
}

function renderSession() {
  const signedIn = session.signedIn;
  byId("login-panel").hidden = signedIn;
  byId("trading-panel").hidden = !signedIn;
  byId("trading-conn").hidden = !signedIn;
  byId("user-box").hidden = !signedIn;
  setText(byId("user-name"), session.username ?? "");
  if (signedIn && !tradingSocket) startTrading();
  if (!signedIn && tradingSocket) stopTrading();
}

byId("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  const error = byId("login-error");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  setText(error, "");
  try {
    await session.login(String(data.get("username")).trim(), String(data.get("password")));
    form.reset();
  } catch (failure) {
    setText(error, failure.status === 401 ? "Wrong username or password" : failure.message);
  } finally {
    button.disabled = false;
  }
});

byId("logout").addEventListener("click", () => session.logout());

// Back online: try at once instead of waiting out the backoff.
window.addEventListener("online", () => {
  marketSocket.reconnectNow();
  tradingSocket?.reconnectNow();
});

renderSession();

// For operators poking at the page from the console, and for the browser tests.
window.tradingGateway = {
  marketSocket,
  market,
  session,
  get tradingSocket() {
    return tradingSocket;
  },
  get account() {
    return account;
  },
};
