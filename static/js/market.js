/**
 * The public market panel: watchlist, order-book ladder, trade tape and price chart, all fed by one
 * TradingWebSocket on /ws/market.
 */

import { PriceChart } from "./chart.js";
import { byId, flash, frameBatcher, h, setText } from "./dom.js";
import {
  addDecimal,
  compareDecimal,
  formatPercent,
  formatPrice,
  formatSize,
  formatTime,
  formatVolume,
  signOf,
  subtractDecimal,
} from "./format.js";

const BOOK_LEVELS = 14;
const TAPE_ROWS = 40;
const REPLAY_WINDOW_MS = 10_000;
const STALE_TICKER_MS = 15_000; // Binance sends a ticker every second: this long without one is stale
const BOOK_SIZE = { digits: 5, maxDecimals: 4, maxIntDigits: 4 }; // sizes in the ladder's narrow columns: 7 characters at most

export class MarketPanel {
  /**
   * @param {TradingWebSocket} socket  connected to /ws/market
   * @param {string[]} symbols  the watchlist, in order
   */
  constructor(socket, symbols) {
    this.socket = socket;
    this.symbols = symbols;
    this.selected = symbols[0] ?? null;
    this.tickers = new Map(); // symbol -> last ticker message
    this.trades = new Map(); // symbol -> newest-first trades
    this.book = null; // last orderbook message of the selected symbol
    this.rows = new Map(); // symbol -> { row, cells }
    this.chart = new PriceChart(byId("price-chart"));
    this.renderBook = frameBatcher(() => this._renderBook());
    this.renderTape = frameBatcher(() => this._renderTape());
    this.selectListeners = new Set();
    this.receivedAt = new Map(); // symbol -> Date.now() of its last ticker, for staleness
    this._buildWatchlist();
    setInterval(() => this._markStaleRows(), 1000);
    socket.on("ticker", (message) => this._onTicker(message));
    socket.on("trade", (message) => this._onTrade(message));
    socket.on("orderbook", (message) => this._onOrderbook(message));
    socket.on("close", () => this.chart.breakLines());
    socket.subscribeTicker(symbols);
    if (this.selected) this.select(this.selected, { force: true });
  }

  /** Last known price of a symbol, as the exchange's string (or null). */
  lastPrice(symbol) {
    return this.tickers.get(symbol)?.price ?? null;
  }

  onSelect(listener) {
    this.selectListeners.add(listener);
  }

  select(symbol, { force = false } = {}) {
    if (!force && symbol === this.selected) return;
    const previous = this.selected;
    if (previous && previous !== symbol) {
      this.socket.unsubscribeTrades([previous]);
      this.socket.unsubscribeOrderbook([previous]);
    }
    this.selected = symbol;
    this.book = null;
    for (const [name, { row }] of this.rows) row.classList.toggle("selected", name === symbol);
    for (const node of document.querySelectorAll("[data-selected-symbol]")) setText(node, symbol);
    this.socket.subscribeTrades([symbol]);
    this.socket.subscribeOrderbook([symbol]);
    this.chart.show(symbol);
    this._renderChartHeader();
    this.renderBook();
    this.renderTape();
    for (const listener of this.selectListeners) listener(symbol);
  }

  // --- watchlist --------------------------------------------------------------------------------

  _buildWatchlist() {
    const body = byId("watchlist").tBodies[0];
    body.replaceChildren();
    for (const symbol of this.symbols) {
      const cells = {
        price: h("td", { className: "num price" }, "—"),
        change: h("td", { className: "num change" }, "—"),
        high: h("td", { className: "num muted col-high" }, "—"),
        low: h("td", { className: "num muted col-low" }, "—"),
        volume: h("td", { className: "num muted col-volume" }, "—"),
      };
      const row = h(
        "tr",
        { dataset: { symbol }, tabIndex: 0, title: `Show ${symbol}` },
        h("td", { className: "symbol" }, symbol),
        cells.price,
        cells.change,
        cells.high,
        cells.low,
        cells.volume,
      );
      row.addEventListener("click", () => this.select(symbol));
      row.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.select(symbol);
        }
      });
      this.rows.set(symbol, { row, cells });
      body.append(row);
    }
  }

  _onTicker(message) {
    const entry = this.rows.get(message.symbol);
    if (!entry) return;
    const previous = this.tickers.get(message.symbol);
    if (previous && isReplay(previous, message)) return;
    this.tickers.set(message.symbol, message);
    this.receivedAt.set(message.symbol, Date.now());
    const { cells, row } = entry;
    row.classList.remove("stale");
    row.removeAttribute("title");
    setText(cells.price, formatPrice(message.price));
    setText(cells.change, formatPercent(message.price_change_percent));
    setText(cells.high, formatPrice(message.high_price));
    setText(cells.low, formatPrice(message.low_price));
    setText(cells.volume, formatVolume(message.volume));
    cells.volume.title = message.volume;
    const direction = signOf(message.price_change_percent);
    cells.change.classList.toggle("up", direction > 0);
    cells.change.classList.toggle("down", direction < 0);
    row.dataset.updated = message.timestamp;
    if (previous) {
      const moved = compareDecimal(message.price, previous.price);
      if (moved !== 0) flash(cells.price, moved > 0 ? "flash-up" : "flash-down");
    }
    if (message.symbol === this.selected) this._renderChartHeader();
  }

  /** A row whose ticker stopped coming is greyed and says since when: its price is no longer live. */
  _markStaleRows() {
    const now = Date.now();
    for (const [symbol, { row }] of this.rows) {
      const at = this.receivedAt.get(symbol);
      const stale = at !== undefined && now - at > STALE_TICKER_MS;
      if (stale === row.classList.contains("stale")) continue;
      row.classList.toggle("stale", stale);
      if (stale) row.title = `No update since ${formatTime(new Date(at).toISOString())}: the price may be out of date`;
      else row.removeAttribute("title");
    }
  }

  _renderChartHeader() {
    const ticker = this.tickers.get(this.selected);
    const price = byId("chart-price");
    const change = byId("chart-change");
    setText(price, ticker ? formatPrice(ticker.price) : "—");
    setText(change, ticker ? formatPercent(ticker.price_change_percent) : "");
    const direction = ticker ? signOf(ticker.price_change_percent) : 0;
    change.classList.toggle("up", direction > 0);
    change.classList.toggle("down", direction < 0);
  }

  // --- trades -----------------------------------------------------------------------------------

  _onTrade(message) {
    if (!this.trades.has(message.symbol)) this.trades.set(message.symbol, []);
    const list = this.trades.get(message.symbol);
    if (message.trade_id !== undefined && list.some((trade) => trade.trade_id === message.trade_id)) return;
    list.unshift(message);
    if (list.length > TAPE_ROWS) list.length = TAPE_ROWS;
    this.chart.add(message.symbol, message.price, message.timestamp);
    if (message.symbol === this.selected) this.renderTape();
  }

  _renderTape() {
    const body = byId("trade-tape").tBodies[0];
    const trades = this.trades.get(this.selected) ?? [];
    if (trades.length === 0) {
      body.replaceChildren(h("tr", { className: "empty" }, h("td", { colSpan: 3 }, "Waiting for trades…")));
      return;
    }
    body.replaceChildren(
      ...trades.map((trade) =>
        h(
          "tr",
          { className: trade.side === "sell" ? "sell" : "buy" },
          h("td", { className: "num price" }, formatPrice(trade.price)),
          h("td", { className: "num", title: trade.quantity }, formatSize(trade.quantity, BOOK_SIZE)),
          h("td", { className: "num muted" }, formatTime(trade.timestamp)),
        ),
      ),
    );
  }

  // --- order book -------------------------------------------------------------------------------

  _onOrderbook(message) {
    if (message.symbol !== this.selected) return;
    this.book = message;
    this.renderBook();
  }

  _renderBook() {
    const bids = (this.book?.bids ?? []).slice(0, BOOK_LEVELS);
    const asks = (this.book?.asks ?? []).slice(0, BOOK_LEVELS);
    const bidRows = withTotals(bids);
    const askRows = withTotals(asks);
    const deepest = Math.max(Number(bidRows.at(-1)?.total ?? 0), Number(askRows.at(-1)?.total ?? 0)) || 1;
    byId("book-bids").tBodies[0].replaceChildren(...ladderRows(bidRows, deepest, "bid"));
    byId("book-asks").tBodies[0].replaceChildren(...ladderRows(askRows, deepest, "ask"));
    const spread = byId("book-spread");
    if (bids.length && asks.length) {
      setText(spread, `Spread ${formatPrice(subtractDecimal(asks[0][0], bids[0][0]))}`);
    } else {
      setText(spread, this.book ? "One side of the book is empty" : "Waiting for the order book…");
    }
    setText(byId("book-updated"), this.book ? formatTime(this.book.timestamp) : "");
  }
}

/**
 * A ticker a little older than the one shown is a snapshot replayed after a (re)subscribe, which
 * crossed a live update: keep the newer one. A much older timestamp means the source's clock moved
 * (a switch of exchange connection or source), and is shown.
 */
function isReplay(shown, incoming) {
  const age = Date.parse(shown.timestamp) - Date.parse(incoming.timestamp);
  return age > 0 && age < REPLAY_WINDOW_MS;
}

/** Levels with their running total (exact decimal sums), best first as the server sends them. */
function withTotals(levels) {
  let total = "0";
  return levels.map(([price, quantity]) => {
    total = addDecimal(total, quantity) ?? total;
    return { price, quantity, total };
  });
}

function ladderRows(levels, deepest, side) {
  if (levels.length === 0) return [h("tr", { className: "empty" }, h("td", { colSpan: 3 }, "—"))];
  return levels.map(({ price, quantity, total }) => {
    const row = h(
      "tr",
      { className: side, dataset: { price } },
      h("td", { className: "num price" }, formatPrice(price)),
      h("td", { className: "num", title: quantity }, formatSize(quantity, BOOK_SIZE)),
      h("td", { className: "num muted col-total", title: total }, formatSize(total, BOOK_SIZE)),
    );
    // Number() only to size the depth bar.
    row.style.setProperty("--depth", `${Math.min(100, (Number(total) / deepest) * 100).toFixed(1)}%`);
    return row;
  });
}
