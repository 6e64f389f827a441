// One chart per symbol: candles and volume, gold's moving averages and Bollinger bands, RSI and
// MACD panes, the champion's prediction per horizon drawn ahead of the last bar, and past batch
// predictions marked hit (green), miss (red) or pending (grey).
import {
  CandlestickSeries, ColorType, HistogramSeries, LineSeries, LineStyle, createChart, createSeriesMarkers,
} from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { change, el, fill, palette, pct, price, prob, signedPct, utc } from "./dom.js";

const OVERLAYS = [
  ["sma_24", "#f0883e", LineStyle.Solid], ["sma_72", "#a371f7", LineStyle.Solid],
  ["ema_12", "#2f81f7", LineStyle.Solid], ["bb_upper", "#8c959f", LineStyle.Dashed],
  ["bb_mid", "#8c959f", LineStyle.Dotted], ["bb_lower", "#8c959f", LineStyle.Dashed],
];
const QUIET = { priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false };

export function chartOptions(colours) {
  return {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: colours.bg }, textColor: colours.text,
      attributionLogo: false, // credited in the footer: the logo injects an inline <style> the CSP forbids
      panes: { separatorColor: colours.border },
    },
    grid: { vertLines: { color: colours.line }, horzLines: { color: colours.line } },
    rightPriceScale: { borderColor: colours.border },
    leftPriceScale: { borderColor: colours.border },
    timeScale: { borderColor: colours.border, timeVisible: true, secondsVisible: false, rightOffset: 4 },
  };
}

function sorted(map) {
  return [...map.values()].sort((a, b) => a.time - b.time);
}

export class SymbolChart {
  constructor(parent, symbol) {
    this.symbol = symbol;
    this.bars = new Map();
    this.rows = new Map();
    this.prediction = null;
    this.markerHorizon = null;
    this.last = el("span", { class: "last" }, "–");
    this.change = el("span");
    this.predictions = el("div", { class: "predictions" });
    this.horizonSelect = el("select", { "aria-label": `horizon of the past predictions of ${symbol}` });
    this.horizonSelect.addEventListener("change", () => {
      this.markerHorizon = Number(this.horizonSelect.value);
      this.drawOutcomes();
    });
    this.outcomeSummary = el("span");
    this.container = el("div", { class: "chart", dataset: { symbol, bars: "0" } });
    this.card = el("article", { class: "chart-card", id: `chart-${symbol}`, dataset: { symbol } },
      el("div", { class: "chart-head" }, el("h2", {}, symbol), this.last, this.change),
      this.predictions, this.container,
      el("div", { class: "outcome-bar" }, el("label", {}, "past predictions: ", this.horizonSelect), this.outcomeSummary),
      el("div", { class: "legend" },
        el("span", {}, el("i", { class: "sma24" }), "SMA 24h"), el("span", {}, el("i", { class: "sma72" }), "SMA 72h"),
        el("span", {}, el("i", { class: "ema12" }), "EMA 12h"), el("span", {}, el("i", { class: "bb" }), "Bollinger 20h"),
        el("span", {}, "panes: RSI 14h (30/70), MACD (12, 26, 9)"),
        el("span", {}, "▲▼ past predictions: green hit, red miss, grey pending; dashed: prediction per horizon")));
    parent.append(this.card);
    this.build(palette());
  }

  build(colours) {
    this.colours = colours;
    const chart = createChart(this.container, chartOptions(colours));
    this.chart = chart;
    this.candles = chart.addSeries(CandlestickSeries, {
      upColor: colours.up, downColor: colours.down, borderVisible: false,
      wickUpColor: colours.up, wickDownColor: colours.down,
    });
    this.volume = chart.addSeries(HistogramSeries, { ...QUIET, priceScaleId: "volume", priceFormat: { type: "volume" } });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    this.overlays = OVERLAYS.map(([key, color, lineStyle]) => [key,
      chart.addSeries(LineSeries, { ...QUIET, color, lineStyle, lineWidth: 1 })]);
    this.rsi = chart.addSeries(LineSeries, { ...QUIET, color: "#a371f7", lineWidth: 1, lastValueVisible: true }, 1);
    for (const level of [70, 30]) {
      this.rsi.createPriceLine({ price: level, color: colours.flat, lineWidth: 1, lineStyle: LineStyle.Dotted, axisLabelVisible: true, title: "" });
    }
    this.macdHist = chart.addSeries(HistogramSeries, { ...QUIET }, 2);
    this.macd = chart.addSeries(LineSeries, { ...QUIET, color: "#2f81f7", lineWidth: 1 }, 2);
    this.macdSignal = chart.addSeries(LineSeries, { ...QUIET, color: "#f0883e", lineWidth: 1 }, 2);
    const [price, rsi, macd] = chart.panes();
    price.setStretchFactor(4);
    rsi.setStretchFactor(1);
    macd.setStretchFactor(1.2);
    this.markers = createSeriesMarkers(this.candles, []);
    this.projections = [];
    this.projectionMarkers = [];
  }

  /** Rebuild with the current theme's colours (keeps the data). */
  retheme() {
    this.chart.remove();
    this.build(palette());
    this.redraw();
    this.drawPrediction();
  }

  /** Replace everything (snapshot). */
  setData(entry) {
    this.bars = new Map(entry.candles.map((b) => [b.time, b]));
    this.rows = new Map(entry.indicators.map((r) => [r.time, r]));
    this.redraw();
  }

  /** Apply new or changed candles and indicator rows (price_update). */
  apply(entry) {
    const lastTime = this.bars.size ? Math.max(...this.bars.keys()) : -Infinity;
    let historical = false;
    for (const b of entry.candles) {
      historical ||= b.time < lastTime;
      this.bars.set(b.time, b);
    }
    for (const r of entry.indicators) this.rows.set(r.time, r);
    if (historical || entry.candles.length > 2 || entry.indicators.length > 2) {
      this.redraw();
      return;
    }
    for (const b of entry.candles) {
      this.candles.update(b);
      this.volume.update(this.volumeBar(b));
    }
    for (const r of entry.indicators) this.updateRow(r);
    this.afterData();
  }

  volumeBar(b) {
    const colour = b.close >= b.open ? this.colours.up : this.colours.down;
    return { time: b.time, value: b.volume, color: `${colour}66` };
  }

  lines(rows, key) {
    return rows.map((r) => (r[key] === null || r[key] === undefined ? { time: r.time } : { time: r.time, value: r[key] }));
  }

  redraw() {
    const bars = sorted(this.bars);
    const rows = sorted(this.rows);
    this.candles.setData(bars);
    this.volume.setData(bars.map((b) => this.volumeBar(b)));
    for (const [key, series] of this.overlays) series.setData(this.lines(rows, key));
    this.rsi.setData(this.lines(rows, "rsi"));
    this.macd.setData(this.lines(rows, "macd"));
    this.macdSignal.setData(this.lines(rows, "macd_signal"));
    this.macdHist.setData(rows.map((r) => (r.macd_hist === null ? { time: r.time }
      : { time: r.time, value: r.macd_hist, color: r.macd_hist >= 0 ? `${this.colours.up}99` : `${this.colours.down}99` })));
    this.afterData();
  }

  updateRow(r) {
    const point = (key) => (r[key] === null || r[key] === undefined ? { time: r.time } : { time: r.time, value: r[key] });
    const rowsLast = Math.max(...this.rows.keys());
    const historical = r.time < rowsLast;
    for (const [key, series] of this.overlays) series.update(point(key), historical);
    this.rsi.update(point("rsi"), historical);
    this.macd.update(point("macd"), historical);
    this.macdSignal.update(point("macd_signal"), historical);
    this.macdHist.update(r.macd_hist === null ? { time: r.time }
      : { time: r.time, value: r.macd_hist, color: r.macd_hist >= 0 ? `${this.colours.up}99` : `${this.colours.down}99` }, historical);
  }

  afterData() {
    const bars = sorted(this.bars);
    const last = bars.at(-1);
    this.container.dataset.bars = String(bars.length);
    if (last) {
      this.container.dataset.lastTime = String(last.time);
      this.container.dataset.lastClose = String(last.close);
      this.last.textContent = price(last.close);
      this.last.title = `close of the bar opened ${utc(last.time)}`;
    }
  }

  /** The champion's latest prediction and the past outcomes of this symbol (prediction_update). */
  setPrediction(entry, board) {
    this.prediction = entry;
    this.board = board;
    const horizons = [...new Set((entry?.outcomes ?? []).map((o) => o.horizon_hours))].sort((a, b) => a - b);
    const current = [...this.horizonSelect.options].map((o) => Number(o.value));
    if (horizons.join() !== current.join()) {
      fill(this.horizonSelect, horizons.map((h) => el("option", { value: h }, `${h}h`)));
      if (!horizons.includes(this.markerHorizon)) this.markerHorizon = horizons[0] ?? null;
      if (this.markerHorizon !== null) this.horizonSelect.value = String(this.markerHorizon);
    }
    this.drawPrediction();
  }

  drawPrediction() {
    for (const series of this.projections) this.chart.removeSeries(series);
    this.projections = [];
    const entry = this.prediction;
    const board = this.board;
    if (!entry) {
      fill(this.predictions, el("span", { class: "note" }, board?.note ?? "no prediction for this symbol"));
      this.container.dataset.predictionTime = "";
      this.drawOutcomes();
      return;
    }
    this.container.dataset.predictionTime = String(entry.feature_time);
    this.container.dataset.predictionModel = String(board.model_version);
    fill(this.predictions,
      el("span", { class: "meta" }, `v${board.model_version} at ${utc(entry.feature_time)}:`),
      entry.horizons.map((p) => el("span", { class: "prediction", dataset: { horizon: p.horizon_hours } },
        el("b", {}, `${p.horizon_hours}h`),
        el("span", { class: `badge ${p.direction}` }, p.direction === "up" ? "▲ up" : "▼ down"), " ",
        `P(up) ${prob(p.direction_probability)} · `, change(p.predicted_return, 2),
        p.expected_close === null ? "" : ` → ${price(p.expected_close)}`, " ",
        el("span", { class: `badge ${p.signal}` }, p.signal))));
    if (entry.close !== null) {
      for (const p of entry.horizons) {
        if (p.expected_close === null) continue;
        const colour = p.direction === "up" ? this.colours.up : this.colours.down;
        const line = this.chart.addSeries(LineSeries, {
          ...QUIET, color: colour, lineWidth: 2, lineStyle: LineStyle.Dashed, title: `${p.horizon_hours}h`,
        });
        line.setData([{ time: entry.feature_time, value: entry.close }, { time: p.target_time, value: p.expected_close }]);
        createSeriesMarkers(line, [{
          time: p.target_time, position: "inBar", shape: "circle", color: colour, size: 0.6,
          text: `${p.horizon_hours}h ${pct(p.direction_probability, 0)} ${signedPct(p.predicted_return, 2)}`,
        }]);
        this.projections.push(line);
      }
    }
    this.drawOutcomes();
  }

  drawOutcomes() {
    const outcomes = (this.prediction?.outcomes ?? []).filter((o) => o.horizon_hours === this.markerHorizon);
    const colour = (o) => (o.hit === null ? this.colours.flat : o.hit ? this.colours.up : this.colours.down);
    this.markers.setMarkers(outcomes.filter((o) => this.bars.has(o.time)).map((o) => ({
      time: o.time, position: o.up ? "belowBar" : "aboveBar", shape: o.up ? "arrowUp" : "arrowDown",
      color: colour(o), size: 0.7,
    })));
    const hits = outcomes.filter((o) => o.hit === true).length;
    const misses = outcomes.filter((o) => o.hit === false).length;
    const pending = outcomes.filter((o) => o.hit === null).length;
    this.container.dataset.outcomes = String(outcomes.length);
    const why = this.board?.outcomes_note;
    fill(this.outcomeSummary, outcomes.length
      ? [el("span", { class: "badge hit" }, `${hits} hit`), " ", el("span", { class: "badge miss" }, `${misses} miss`), " ",
        el("span", { class: "badge pending" }, `${pending} pending`),
        this.scored(hits, misses)]
      : el("span", { class: "note" }, why ?? "no past predictions in this span"));
  }

  scored(hits, misses) {
    const n = hits + misses;
    return n ? ` ${pct(hits / n, 0)} right over ${n} scored (v${this.board?.outcomes_model_version ?? "?"})` : "";
  }

  /** The 24 h change beside the last price (from the market table). */
  setChange(value) {
    fill(this.change, change(value), el("span", { class: "meta" }, " 24h"));
  }

  remove() {
    this.chart.remove();
    this.card.remove();
  }
}
