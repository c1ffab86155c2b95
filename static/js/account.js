/**
 * The signed-in trading panel: order entry, orders with live status (fills, fees), portfolio with
 * free and locked balances, bots (DCA and grid) and risk alerts, fed by the REST API and one
 * TradingWebSocket on /ws/trading.
 */

import { byId, h, setText, toast } from "./dom.js";
import {
  amountProblem,
  compareDecimal,
  directionClass,
  formatMoney,
  formatPercent,
  formatPrice,
  formatSize,
  formatTime,
  plainDecimal,
  signOf,
} from "./format.js";

const OPEN_STATUSES = new Set(["new", "partially_filled"]);
const STATUS_RANK = { new: 0, partially_filled: 1, filled: 2, canceled: 2, rejected: 2 };
const MAX_ORDERS_SHOWN = 50;
const SEVERITY_KIND = { critical: "danger", high: "danger", medium: "warning", low: "info" };

export class AccountPanel {
  /**
   * @param {object} deps
   * @param {Session} deps.session  the signed-in session (REST calls, tokens)
   * @param {TradingWebSocket} deps.socket  on /ws/trading
   * @param {MarketPanel} deps.market  for last prices and the selected symbol
   * @param {string[]} deps.symbols
   */
  constructor({ session, socket, market, symbols }) {
    this.session = session;
    this.socket = socket;
    this.market = market;
    this.orders = new Map(); // order id (string) -> order
    this.bots = new Map(); // bot id (string) -> bot
    this.portfolio = null;
    this._fillSymbols(symbols);
    this._bindOrderForm();
    this._bindBotForm(symbols);
    byId("cancel-all")?.addEventListener("click", (event) => this._cancelAll(event.currentTarget));
    socket.on("order_update", (message) => this._mergeOrder(fromOrderUpdate(message)));
    socket.on("bot_status", (message) => this._mergeBot(fromBotStatus(message)));
    socket.on("portfolio", (message) => this._renderPortfolio(message));
    socket.on("risk_alert", (message) => this._onRiskAlert(message));
    market.onSelect((symbol) => {
      byId("order-symbol").value = symbol;
      this._updateSubmitLabel();
    });
  }

  /** Load what REST knows (order history, bots, portfolio); the socket keeps it live afterwards. */
  async load() {
    const [orders, bots, holdings] = await Promise.allSettled([
      this.session.api("GET", "/api/orders/"),
      this.session.api("GET", "/api/bots/"),
      this.session.api("GET", "/api/portfolio/"),
    ]);
    if (orders.status === "fulfilled") for (const order of listOf(orders.value)) this._mergeOrder(fromRest(order));
    if (bots.status === "fulfilled") for (const bot of listOf(bots.value)) this._mergeBot(fromRestBot(bot));
    if (holdings.status === "fulfilled" && holdings.value && !this.portfolio) this._renderPortfolio(holdings.value);
    const failed = [orders, bots, holdings].find((result) => result.status === "rejected");
    if (failed) toast("Could not load your account", failed.reason.message, "warning");
    this._renderOrders();
    this._renderBots();
  }

  reset() {
    this.orders.clear();
    this.bots.clear();
    this.portfolio = null;
    this._renderOrders();
    this._renderBots();
    this._renderPortfolio(null);
  }

  // --- order entry ------------------------------------------------------------------------------

  _fillSymbols(symbols) {
    const select = byId("order-symbol");
    select.replaceChildren(...symbols.map((symbol) => h("option", { value: symbol }, symbol)));
    select.value = this.market.selected ?? symbols[0];
  }

  _bindOrderForm() {
    const form = byId("order-form");
    const type = byId("order-type");
    const syncType = () => {
      const limit = type.value === "limit";
      byId("order-price-row").hidden = !limit;
      byId("order-price").required = limit;
      if (limit && !byId("order-price").value) {
        const last = this.market.lastPrice(byId("order-symbol").value);
        if (last) byId("order-price").value = plainDecimal(last); // the exchange's own string: on its tick
      }
    };
    type.addEventListener("change", syncType);
    byId("order-symbol").addEventListener("change", () => {
      byId("order-price").value = "";
      syncType();
      this._updateSubmitLabel();
    });
    for (const radio of form.querySelectorAll("input[name=side]")) radio.addEventListener("change", () => this._updateSubmitLabel());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._placeOrder(form);
    });
    // A message about what was typed goes as soon as it is edited: it described the old value.
    form.addEventListener("input", () => {
      const message = byId("order-message");
      if (message.classList.contains("error")) showOrderMessage("", "");
      for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    });
    syncType();
    this._updateSubmitLabel();
  }

  _updateSubmitLabel() {
    const form = byId("order-form");
    const side = form.querySelector("input[name=side]:checked")?.value ?? "buy";
    const button = byId("order-submit");
    setText(button, `${side === "buy" ? "Buy" : "Sell"} ${byId("order-symbol").value}`);
    button.classList.toggle("btn-buy", side === "buy");
    button.classList.toggle("btn-sell", side === "sell");
  }

  async _placeOrder(form) {
    const data = new FormData(form);
    const order = {
      symbol: data.get("symbol"),
      side: data.get("side"),
      type: data.get("type"),
      quantity: String(data.get("quantity")).trim(),
    };
    if (order.type === "limit") order.price = String(data.get("price")).trim();
    const problem = [
      ["order-quantity", amountProblem(order.quantity, "Quantity")],
      ["order-price", order.type === "limit" ? amountProblem(order.price, "Limit price") : null],
    ].find(([, text]) => text);
    if (problem) {
      byId(problem[0]).setAttribute("aria-invalid", "true");
      showOrderMessage(problem[1], "error");
      return;
    }
    const button = byId("order-submit");
    button.disabled = true;
    showOrderMessage("Sending…", "");
    try {
      const placed = await this.session.api("POST", "/api/orders/", order);
      this._mergeOrder(fromRest(placed));
      showOrderMessage(`Order ${placed.id} ${placed.status.replace("_", " ")}`, "ok");
    } catch (error) {
      showOrderMessage(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  async _cancelOrder(id, button) {
    button.disabled = true;
    try {
      const order = await this.session.api("POST", `/api/orders/${encodeURIComponent(id)}/cancel/`);
      if (order && order.id !== undefined) this._mergeOrder(fromRest(order));
    } catch (error) {
      toast(`Could not cancel order ${id}`, error.message, "warning");
      button.disabled = false;
    }
  }

  async _cancelAll(button) {
    button.disabled = true;
    try {
      const result = await this.session.api("POST", "/api/orders/cancel-all/", {});
      for (const order of result?.orders ?? []) this._mergeOrder(fromRest(order));
      toast("Orders canceled", `${result?.canceled ?? 0} open order(s) canceled`, "info");
    } catch (error) {
      toast("Could not cancel your orders", error.message, "warning");
    } finally {
      button.disabled = false;
    }
  }

  // --- orders -----------------------------------------------------------------------------------

  _mergeOrder(update) {
    if (!update.id) return;
    const existing = this.orders.get(update.id);
    if (existing && isStale(existing, update)) return;
    const merged = { ...existing, ...withoutEmpty(update) };
    merged.sort ??= existing?.sort ?? (Date.parse(merged.created_at) || Date.now());
    this.orders.set(update.id, merged);
    this._renderOrders();
  }

  _renderOrders() {
    const body = byId("orders").tBodies[0];
    const orders = [...this.orders.values()].sort((a, b) => b.sort - a.sort).slice(0, MAX_ORDERS_SHOWN);
    const open = [...this.orders.values()].filter((order) => OPEN_STATUSES.has(order.status)).length;
    setText(byId("open-orders-count"), String(open));
    if (orders.length === 0) {
      body.replaceChildren(h("tr", { className: "empty" }, h("td", { colSpan: 10 }, "No orders yet")));
      return;
    }
    body.replaceChildren(...orders.map((order) => this._orderRow(order)));
  }

  _orderRow(order) {
    const cancel = OPEN_STATUSES.has(order.status)
      ? h("button", { type: "button", className: "btn btn-small", onclick: (event) => this._cancelOrder(order.id, event.currentTarget) }, "Cancel")
      : null;
    const price = order.average_price && signOf(order.average_price) !== 0 ? order.average_price : order.price;
    return h(
      "tr",
      { dataset: { orderId: order.id, status: order.status ?? "" } },
      h("td", { className: "muted col-time" }, formatTime(order.created_at ?? order.updated_at)),
      h("td", { className: `symbol side-${order.side}` }, order.symbol ?? "—"),
      h("td", { className: `col-side ${order.side === "sell" ? "down" : "up"}` }, order.side ?? "—"),
      h("td", { className: "col-type" }, order.type ?? "—"),
      h("td", { className: "num", title: order.quantity }, order.quantity ? formatSize(order.quantity) : "—"),
      h("td", { className: "num col-filled", title: order.filled_quantity }, formatSize(order.filled_quantity ?? "0")),
      h("td", { className: "num" }, price ? formatPrice(price) : order.type === "market" ? "market" : "—"),
      h("td", { className: "num muted col-fee", title: order.fee }, signOf(order.fee ?? "0") !== 0 ? formatMoney(order.fee) : "—"),
      h("td", { title: order.reason ?? "" }, h("span", { className: `status status-${order.status}` }, (order.status ?? "—").replace("_", " "))),
      h("td", { className: "actions" }, cancel),
    );
  }

  // --- portfolio --------------------------------------------------------------------------------

  _renderPortfolio(portfolio) {
    this.portfolio = portfolio;
    const value = byId("portfolio-value");
    const previous = value.textContent;
    const before = value.dataset.value;
    setText(value, portfolio ? `${formatMoney(portfolio.total_value)} USDT` : "—");
    value.dataset.value = portfolio?.total_value ?? "";
    if (portfolio && previous !== value.textContent && previous !== "—") {
      // The flash says which way it went: the up colour for a rise, the down colour for a fall.
      value.classList.remove("pulse", "pulse-up", "pulse-down");
      void value.offsetWidth;
      value.classList.add("pulse", compareDecimal(portfolio.total_value, before) < 0 ? "pulse-down" : "pulse-up");
    }
    const details = byId("portfolio-details");
    const figures = [
      ["Cash", portfolio?.cash],
      ["Unrealised PnL", portfolio?.unrealized_pnl],
      ["Realised PnL", portfolio?.realized_pnl],
      ["Fees paid", portfolio?.fees],
    ].filter(([, figure]) => figure !== undefined && figure !== null);
    details.replaceChildren(
      ...figures.map(([label, figure]) =>
        h("div", { className: "figure" }, h("span", { className: "muted" }, label), h("span", { className: `num ${pnlClass(label, figure)}` }, formatMoney(figure))),
      ),
    );
    this._renderBalances(portfolio?.balances ?? []);
    const body = byId("positions").tBodies[0];
    const positions = (portfolio?.positions ?? []).filter((position) => signOf(position.quantity) !== 0);
    if (positions.length === 0) {
      body.replaceChildren(h("tr", { className: "empty" }, h("td", { colSpan: 5 }, "No open positions")));
      return;
    }
    body.replaceChildren(
      ...positions.map((position) => {
        const pnl = position.unrealized_pnl;
        const value = position.market_value;
        return h(
          "tr",
          { dataset: { symbol: position.symbol } },
          h("td", {}, position.symbol),
          h("td", { className: "num", title: position.quantity }, formatSize(position.quantity)),
          h("td", { className: "num col-avg" }, position.average_price ? formatPrice(position.average_price) : "—"),
          h("td", { className: "num col-value" }, value !== undefined ? formatMoney(value) : "—"),
          h("td", { className: `num ${directionClass(pnl)}` }, pnl !== undefined ? formatMoney(pnl) : "—"),
        );
      }),
    );
  }

  _renderBalances(balances) {
    const body = byId("balances")?.tBodies[0];
    if (!body) return;
    const shown = balances.filter((balance) => signOf(balance.free) !== 0 || signOf(balance.locked) !== 0);
    if (shown.length === 0) {
      body.replaceChildren(h("tr", { className: "empty" }, h("td", { colSpan: 3 }, "No balances")));
      return;
    }
    body.replaceChildren(
      ...shown.map((balance) =>
        h(
          "tr",
          { dataset: { asset: balance.asset } },
          h("td", {}, balance.asset),
          h("td", { className: "num", title: balance.free }, formatSize(balance.free)),
          h("td", { className: "num muted", title: balance.locked }, formatSize(balance.locked)),
        ),
      ),
    );
  }

  // --- bots -------------------------------------------------------------------------------------

  _bindBotForm(symbols) {
    const form = byId("bot-form");
    if (!form) return;
    byId("bot-symbol").replaceChildren(...symbols.map((symbol) => h("option", { value: symbol }, symbol)));
    const strategy = byId("bot-strategy");
    const sync = () => {
      for (const fields of form.querySelectorAll("[data-strategy]")) fields.hidden = fields.dataset.strategy !== strategy.value;
    };
    strategy.addEventListener("change", sync);
    sync();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._createBot(form);
    });
  }

  async _createBot(form) {
    const data = new FormData(form);
    const value = (name) => String(data.get(name) ?? "").trim();
    const strategy = value("strategy");
    const params =
      strategy === "grid"
        ? { lower: value("lower"), upper: value("upper"), levels: Number.parseInt(value("levels"), 10), quantity_per_level: value("quantity_per_level") }
        : { quote_amount: value("quote_amount"), interval_seconds: Number.parseInt(value("interval_seconds"), 10) };
    const message = byId("bot-message");
    message.className = "form-message";
    try {
      const bot = await this.session.api("POST", "/api/bots/", { name: value("name"), symbol: value("symbol"), strategy, params });
      this._mergeBot(fromRestBot(bot));
      setText(message, `Bot ${bot.name} created (stopped): start it from the list`);
      message.classList.add("ok");
    } catch (error) {
      setText(message, error.message);
      message.classList.add("error");
    }
  }

  _mergeBot(update) {
    if (!update.id) return;
    const existing = this.bots.get(update.id);
    const merged = { ...existing, ...withoutEmpty(update) };
    merged.performance = { ...existing?.performance, ...withoutEmpty(update.performance ?? {}) };
    this.bots.set(update.id, merged);
    this._renderBots();
  }

  _renderBots() {
    const body = byId("bots").tBodies[0];
    const bots = [...this.bots.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    if (bots.length === 0) {
      body.replaceChildren(h("tr", { className: "empty" }, h("td", { colSpan: 6 }, "No bots")));
      return;
    }
    body.replaceChildren(...bots.map((bot) => this._botRow(bot)));
  }

  _botRow(bot) {
    const running = bot.status === "running" || bot.status === "active" || bot.status === "started";
    const action = running ? "stop" : "start";
    const button = h(
      "button",
      { type: "button", className: `btn btn-small ${running ? "btn-sell" : "btn-buy"}`, dataset: { action } },
      running ? "Stop" : "Start",
    );
    button.addEventListener("click", () => this._botAction(bot.id, action, button));
    const performance = bot.performance ?? {};
    const pnl = performance.total_pnl;
    return h(
      "tr",
      { dataset: { botId: bot.id, status: bot.status ?? "" } },
      h("td", {}, h("div", {}, bot.name ?? `Bot ${bot.id}`), h("div", { className: "muted small" }, [bot.strategy, bot.symbol].filter(Boolean).join(" · "))),
      h("td", {}, h("span", { className: `status status-${bot.status}` }, bot.status ?? "—")),
      h("td", { className: `num ${directionClass(pnl)}` }, pnl !== undefined ? formatMoney(pnl) : "—"),
      h("td", { className: "num col-winrate" }, performance.win_rate !== undefined ? formatPercent(performance.win_rate).replace(/^\+/, "") : "—"),
      h("td", { className: "num col-trades" }, performance.trades_today ?? "—"),
      h("td", { className: "actions" }, button),
    );
  }

  async _botAction(id, action, button) {
    button.disabled = true;
    try {
      const bot = await this.session.api("POST", `/api/bots/${encodeURIComponent(id)}/${action}/`);
      if (bot && bot.id !== undefined) this._mergeBot(fromRestBot(bot));
    } catch (error) {
      toast(`Could not ${action} the bot`, error.message, "warning");
      button.disabled = false;
    }
  }

  // --- risk alerts ------------------------------------------------------------------------------

  _onRiskAlert(alert) {
    const title = `Risk alert: ${String(alert.alert_type ?? "alert").replace(/_/g, " ")}`;
    const figures = alert.current_value && alert.limit_value ? ` (${formatMoney(alert.current_value)} over limit ${formatMoney(alert.limit_value)})` : "";
    toast(title, `${alert.message ?? ""}${figures}`, SEVERITY_KIND[alert.severity] ?? "warning", 15_000);
  }
}

// --- shapes: REST and WebSocket objects to one record each ----------------------------------------

function listOf(data) {
  if (Array.isArray(data)) return data;
  return Array.isArray(data?.results) ? data.results : [];
}

function fromRest(order) {
  return { ...order, id: String(order.id), timestamp: order.updated_at ?? order.created_at };
}

function fromOrderUpdate(message) {
  const { order_id: id, type: _type, order_type: orderType, ...rest } = message;
  const record = { ...rest, id: String(id) };
  if (orderType) record.type = orderType;
  record.updated_at = message.updated_at ?? message.timestamp;
  return record;
}

function fromRestBot(bot) {
  return { ...bot, id: String(bot.id) };
}

function fromBotStatus(message) {
  const { bot_id: id, type: _type, ...rest } = message;
  return { ...rest, id: String(id) };
}

/** An update older than what is shown (e.g. a snapshot that crossed a live event) is ignored. */
function isStale(existing, update) {
  const rankNow = STATUS_RANK[existing.status] ?? 0;
  const rankNew = STATUS_RANK[update.status] ?? 0;
  if (rankNew < rankNow) return true;
  const before = Date.parse(existing.timestamp ?? existing.updated_at);
  const after = Date.parse(update.timestamp ?? update.updated_at);
  return rankNew === rankNow && before > after;
}

function withoutEmpty(record) {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined && value !== null));
}

function pnlClass(label, figure) {
  return label.includes("PnL") ? directionClass(figure) : "";
}

function showOrderMessage(text, kind) {
  const message = byId("order-message");
  setText(message, text);
  message.className = kind ? `form-message ${kind}` : "form-message";
}
