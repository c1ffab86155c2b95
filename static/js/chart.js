/**
 * A small line chart of the session's trades on a canvas. Prices are converted with Number() only
 * to place points on screen; the labels show the original strings.
 */

import { formatPrice } from "./format.js";

const MAX_POINTS = 600;
const PADDING = { top: 12, right: 72, bottom: 22, left: 8 };

export class PriceChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.series = new Map(); // symbol -> [{ t, y, label }]
    this.symbol = null;
    this.broken = new Set(); // symbols whose next point starts a new line
    this._pending = false;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  show(symbol) {
    this.symbol = symbol;
    this.draw();
  }

  /** The feed was interrupted: the next point of every symbol starts a new line. */
  breakLines() {
    for (const symbol of this.series.keys()) this.broken.add(symbol);
  }

  add(symbol, price, timestamp) {
    const y = Number(price);
    if (!Number.isFinite(y)) return;
    const t = Date.parse(timestamp) || Date.now();
    if (!this.series.has(symbol)) this.series.set(symbol, []);
    const points = this.series.get(symbol);
    points.push({ t, y, label: formatPrice(price), breakBefore: this.broken.delete(symbol) });
    if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
    if (symbol === this.symbol) this._schedule();
  }

  _schedule() {
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this.draw();
    });
  }

  draw() {
    const { canvas, context: ctx } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const styles = getComputedStyle(canvas);
    const colors = {
      grid: styles.getPropertyValue("--chart-grid").trim() || "#263041",
      text: styles.getPropertyValue("--chart-text").trim() || "#8b97ab",
      up: styles.getPropertyValue("--up").trim() || "#16c784",
      down: styles.getPropertyValue("--down").trim() || "#ea3943",
    };
    ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
    const points = this.series.get(this.symbol) ?? [];
    if (points.length < 2) {
      ctx.fillStyle = colors.text;
      ctx.textAlign = "center";
      ctx.fillText(points.length ? "waiting for more trades…" : "waiting for trades…", width / 2, height / 2);
      return;
    }
    const plot = {
      x: PADDING.left,
      y: PADDING.top,
      w: width - PADDING.left - PADDING.right,
      h: height - PADDING.top - PADDING.bottom,
    };
    let low = Infinity;
    let high = -Infinity;
    let lowLabel = "";
    let highLabel = "";
    for (const point of points) {
      if (point.y < low) [low, lowLabel] = [point.y, point.label];
      if (point.y > high) [high, highLabel] = [point.y, point.label];
    }
    const span = high - low || Math.abs(high) * 0.001 || 1;
    const start = points[0].t;
    const duration = Math.max(1, points.at(-1).t - start);
    const xOf = (t) => plot.x + ((t - start) / duration) * plot.w;
    const yOf = (y) => plot.y + plot.h - ((y - low) / span) * plot.h;

    // grid and range labels
    ctx.strokeStyle = colors.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = colors.text;
    ctx.textAlign = "left";
    for (let i = 0; i <= 4; i += 1) {
      const y = Math.round(plot.y + (plot.h * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.x, y);
      ctx.lineTo(plot.x + plot.w, y);
      ctx.stroke();
    }
    const last = points.at(-1);
    const tagY = Math.min(Math.max(yOf(last.y), plot.y + 8), plot.y + plot.h - 8);
    // Range labels on the right axis, unless the last-price tag sits on them.
    for (const [label, y] of [
      [highLabel, yOf(high)],
      [lowLabel, yOf(low)],
    ]) {
      if (Math.abs(y - tagY) > 16) ctx.fillText(label, plot.x + plot.w + 6, y + 4);
    }
    ctx.textAlign = "left";
    ctx.fillText(new Date(start).toLocaleTimeString([], { hour12: false }), plot.x, height - 6);
    ctx.textAlign = "right";
    ctx.fillText(new Date(points.at(-1).t).toLocaleTimeString([], { hour12: false }), plot.x + plot.w, height - 6);

    // area and line, coloured by the session's direction; a reconnect leaves a gap in the line
    // rather than a straight bridge over the time the feed was down
    const rising = points.at(-1).y >= points[0].y;
    const stroke = rising ? colors.up : colors.down;
    const gradient = ctx.createLinearGradient(0, plot.y, 0, plot.y + plot.h);
    gradient.addColorStop(0, `${stroke}55`);
    gradient.addColorStop(1, `${stroke}00`);
    for (const segment of segments(points)) {
      ctx.beginPath();
      segment.forEach((point, index) => {
        if (index === 0) ctx.moveTo(xOf(point.t), yOf(point.y));
        else ctx.lineTo(xOf(point.t), yOf(point.y));
      });
      ctx.strokeStyle = stroke;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      ctx.lineTo(xOf(segment.at(-1).t), plot.y + plot.h);
      ctx.lineTo(xOf(segment[0].t), plot.y + plot.h);
      ctx.closePath();
      ctx.fillStyle = gradient;
      ctx.fill();
    }

    // last price tag
    ctx.fillStyle = stroke;
    ctx.fillRect(plot.x + plot.w + 2, tagY - 8, PADDING.right - 4, 16);
    ctx.fillStyle = "#0b0e14";
    ctx.textAlign = "left";
    ctx.fillText(last.label, plot.x + plot.w + 6, tagY + 4);
  }
}

/** Runs of points between the breaks left by lost connections. */
function segments(points) {
  const runs = [[points[0]]];
  for (const point of points.slice(1)) {
    if (point.breakBefore) runs.push([]);
    runs.at(-1).push(point);
  }
  return runs;
}
