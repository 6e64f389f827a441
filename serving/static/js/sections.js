// The page's sections besides the charts: market table, Fear & Greed, breadth, model quality,
// sentiment, paper portfolio and system status. Each renders only what the server sent, and
// says why when it has nothing.
import { LineSeries, LineStyle, createChart } from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { chartOptions } from "./charts.js";
import { age, change, compact, el, fill, note, palette, pct, price, prob, utc } from "./dom.js";

const $ = (selector) => document.querySelector(selector);

function fearGreedColour(value) {
  if (value <= 24) return "#cf222e";
  if (value <= 44) return "#bc4c00";
  if (value <= 55) return "#6e7781";
  if (value <= 75) return "#4ac26b";
  return "#1a7f37";
}

/** Breadth, Fear & Greed and the market table with the signal per horizon. */
export function renderMarket(prices, predictions) {
  const market = prices?.market;
  const noteNode = $("#market-note");
  if (!market) {
    fill($("#breadth"), el("h3", {}, "Breadth"), note(prices?.note ?? "no market data"));
    fill($("#fear-greed"), el("h3", {}, "Fear & Greed"), note(prices?.note ?? "no market data"));
    fill($("#market-table thead"));
    fill($("#market-table tbody"));
    noteNode.hidden = false;
    noteNode.textContent = prices?.note ?? "no market data";
    return;
  }
  noteNode.hidden = true;
  const s = market.summary;
  fill($("#breadth"), el("h3", {}, "Breadth"),
    el("p", { class: "big" }, `${s.symbols} symbol${s.symbols === 1 ? "" : "s"}`),
    el("p", {}, el("span", { class: "up" }, `▲ ${s.up} up`), " · ", el("span", { class: "down" }, `▼ ${s.down} down`), ` · ${s.unchanged} unchanged`),
    el("p", {}, "mean 24h change ", change(s.mean_change_24h)),
    el("p", { class: "meta" }, `as of ${utc(s.as_of)} · silver/candles v${market.candles_version}`));
  const fg = market.fear_greed;
  if (!fg) {
    fill($("#fear-greed"), el("h3", {}, "Fear & Greed"),
      note("no Fear & Greed data yet: produce some with `marketlake produce fear-greed --file ...`"));
  } else {
    const bar = el("div");
    bar.style.width = `${Math.max(0, Math.min(100, fg.value))}%`;
    bar.style.background = fearGreedColour(fg.value);
    const big = el("p", { class: "big" }, `${fg.value} `, el("small", {}, fg.classification ?? ""));
    big.style.color = fearGreedColour(fg.value);
    fill($("#fear-greed"), el("h3", {}, "Fear & Greed"), big, el("div", { class: "gauge" }, bar),
      el("p", { class: "meta" }, `0 extreme fear · 100 extreme greed · ${utc(fg.ts)}`));
  }
  const horizons = predictions?.symbols?.[0]?.horizons.map((h) => h.horizon_hours) ?? [];
  const bySymbol = new Map((predictions?.symbols ?? []).map((p) => [p.symbol, p]));
  fill($("#market-table thead"), el("tr", {},
    el("th", {}, "Symbol"), el("th", { class: "num" }, "Price"), el("th", { class: "num" }, "24h"),
    el("th", { class: "num" }, "Volatility 24h"), el("th", { class: "num" }, "Volume 24h"),
    horizons.map((h) => el("th", {}, `Signal ${h}h`)), el("th", {}, "Latest bar")));
  fill($("#market-table tbody"), market.prices.map((p) => {
    const predicted = bySymbol.get(p.symbol);
    return el("tr", { dataset: { symbol: p.symbol } },
      el("th", { scope: "row" }, el("a", { href: `#chart-${p.symbol}` }, p.symbol)),
      el("td", { class: "num" }, price(p.close)), el("td", { class: "num" }, change(p.change_24h)),
      el("td", { class: "num" }, pct(p.volatility_24h)), el("td", { class: "num" }, compact(p.volume_24h)),
      horizons.map((h) => {
        const entry = predicted?.horizons.find((x) => x.horizon_hours === h);
        return el("td", {}, entry ? [el("span", { class: `badge ${entry.signal}` }, entry.signal), ` ${prob(entry.direction_probability)}`] : "–");
      }),
      el("td", { class: "meta" }, utc(p.ts)));
  }));
  fill($("#market-table caption"), predictions?.model_version
    ? `signals of ${predictions.model_name} v${predictions.model_version}: long when P(up) ≥ ${predictions.long_threshold}, short when ≤ ${predictions.short_threshold} (the backtest's rule); volatility: realised, not annualised`
    : predictions?.note ?? "no signals");
}

function accuracyCell(a) {
  if (!a || a.accuracy === null) return el("td", { class: "num muted" }, "–");
  const interval = a.ci_low === null ? "" : ` [${a.ci_low.toFixed(3)}, ${a.ci_high.toFixed(3)}]`;
  return el("td", { class: "num" }, a.accuracy.toFixed(3), el("span", { class: "meta" }, interval), a.n ? el("span", { class: "meta" }, ` n=${a.n}`) : "");
}

/** Champion, training data versions, validation/test/live accuracy beside the baselines. */
export function renderQuality(board) {
  const body = $("#quality .body");
  const q = board?.quality;
  if (!q) {
    fill(body, note(board?.note ?? "no champion model yet: train one with `marketlake train`"));
    return;
  }
  const baselines = [...new Set([...q.test, ...q.live].flatMap((row) => Object.keys(row.baselines)))];
  const rows = [];
  if (Object.keys(q.validation).length) {
    rows.push(el("tr", {}, el("th", {}, "validation (pooled)"), el("td", { class: "num" }, q.validation.model.toFixed(3)),
      el("td", { colspan: Math.max(1, baselines.length) }, Object.entries(q.validation).filter(([k]) => k !== "model")
        .map(([k, v]) => `${k} ${v.toFixed(3)}`).join(" · "))));
  }
  const table = (label, list) => list.map((row) => el("tr", {}, el("th", {}, `${label} ${row.horizon_hours}h`
    + (row.pending ? ` (${row.pending} pending)` : "")), accuracyCell(row.model), baselines.map((b) => accuracyCell(row.baselines[b]))));
  rows.push(...table("test", q.test), ...table("live", q.live));
  const warnings = q.warnings.map((w) => el("p", { class: "bad", role: "alert" }, `⚠ ${w}`));
  fill(body,
    el("p", {}, "champion ", el("b", {}, `${q.model_name} v${q.model_version}`),
      q.run_id ? el("span", { class: "meta" }, ` · run ${q.run_id.slice(0, 12)}`) : ""),
    Object.keys(q.training_data).length
      ? el("p", { class: "meta" }, "trained on ", Object.entries(q.training_data).map(([t, v]) => `${t} ${v}`).join(", "))
      : note("training data versions not recorded"),
    q.beats_baselines === true ? el("p", { class: "ok" }, "✓ beats every baseline on validation") : "",
    warnings,
    el("div", { class: "scroll" }, el("table", {},
      el("caption", {}, "directional accuracy with its 95% interval; live: gold/predictions of this version against realised outcomes, beside always-up and persistence on the same hours"),
      el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", { class: "num" }, "model"), baselines.map((b) => el("th", { class: "num" }, b)))),
      el("tbody", {}, rows))),
    q.live.length ? "" : note(board.outcomes_note ?? "no live accuracy yet"),
    q.note ? note(q.note) : "");
}

let sentimentChart = null;
let sentimentSeries = null;

/** Newest posts and the rolling score of a symbol against its price. */
export function renderSentiment(sentiment, charts) {
  const posts = sentiment?.posts ?? [];
  const noteNode = $("#sentiment-note");
  noteNode.textContent = posts.length ? `${sentiment.total_posts} posts in silver/posts; newest ${posts.length} shown`
    : sentiment?.note ?? "no posts yet: produce some with `marketlake produce posts --file ...`";
  fill($("#posts"), posts.map((p) => el("li", { dataset: { post: p.post_id } },
    el("div", { class: "post-meta" },
      el("span", { class: `badge ${p.score > 0.05 ? "up" : p.score < -0.05 ? "down" : "flat"}` }, p.score === null ? "–" : p.score.toFixed(2)),
      el("span", {}, utc(p.ts)), el("span", {}, [p.platform, p.author].filter(Boolean).join(" · ")),
      p.symbols.map((s) => el("span", { class: "chip" }, s))),
    el("p", { class: "text" }, p.text))));
  const rolling = sentiment?.rolling ?? [];
  const head = $(".sentiment-chart-head");
  const box = $("#sentiment-chart");
  head.hidden = box.hidden = rolling.length === 0;
  if (!rolling.length) return;
  const select = $("#sentiment-symbol");
  // symbols with a price chart first: their score is drawn against their close
  const symbols = rolling.map((r) => r.symbol).sort((a, b) => Number(charts.has(b)) - Number(charts.has(a)) || a.localeCompare(b));
  if ([...select.options].map((o) => o.value).join() !== symbols.join()) {
    const keep = select.value;
    fill(select, symbols.map((s) => el("option", { value: s }, s)));
    if (symbols.includes(keep)) select.value = keep;
    select.onchange = () => renderSentiment(sentiment, charts);
  }
  const chosen = rolling.find((r) => r.symbol === select.value) ?? rolling[0];
  if (!sentimentChart) {
    const colours = palette();
    sentimentChart = createChart(box, { ...chartOptions(colours), leftPriceScale: { visible: true, borderColor: colours.border } });
    sentimentSeries = {
      price: sentimentChart.addSeries(LineSeries, { color: colours.muted, lineWidth: 1, priceLineVisible: false, title: "close" }),
      score: sentimentChart.addSeries(LineSeries, { color: "#a371f7", lineWidth: 2, priceScaleId: "left", priceLineVisible: false, title: "sentiment" }),
    };
    sentimentSeries.score.createPriceLine({ price: 0, color: colours.flat, lineStyle: LineStyle.Dotted, lineWidth: 1, axisLabelVisible: false });
  }
  sentimentSeries.score.setData(chosen.points.map((p) => ({ time: p.time, value: p.score })));
  const closes = charts.get(chosen.symbol)?.bars;
  sentimentSeries.price.setData(closes ? [...closes.values()].sort((a, b) => a.time - b.time).map((b) => ({ time: b.time, value: b.close })) : []);
}

export function resetSentimentChart() {
  sentimentChart?.remove();
  sentimentChart = null;
}

let equityChart = null;

/** The paper-trading ledger (gold/paper_trades, gold/paper_equity) or why there is none. */
export function renderPortfolio(portfolio) {
  const body = $("#portfolio .body");
  const box = $("#equity-chart");
  const equity = portfolio?.equity ?? [];
  const trades = portfolio?.trades ?? [];
  const timeKey = equity.length ? ["ts", "time"].find((k) => k in equity[0]) : undefined;
  const valueKey = equity.length ? ["equity", "value", "balance"].find((k) => k in equity[0]) : undefined;
  box.hidden = !(timeKey && valueKey);
  if (timeKey && valueKey) {
    if (!equityChart) {
      equityChart = { chart: createChart(box, chartOptions(palette())) };
      equityChart.series = equityChart.chart.addSeries(LineSeries, { color: "#2f81f7", lineWidth: 2, priceLineVisible: false });
    }
    const points = new Map();
    for (const row of equity) points.set(Math.floor(Date.parse(row[timeKey]) / 1000), Number(row[valueKey]));
    equityChart.series.setData([...points].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
  }
  if (!trades.length) {
    fill(body, note(portfolio?.note ?? "no paper trades yet"));
    return;
  }
  const columns = Object.keys(trades[0]);
  fill(body, el("div", { class: "scroll" }, el("table", {},
    el("caption", {}, `newest ${trades.length} paper trades (gold/paper_trades)`),
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, trades.map((t) => el("tr", {}, columns.map((c) => el("td", { class: typeof t[c] === "number" ? "num" : "" },
      typeof t[c] === "number" ? (Number.isInteger(t[c]) ? String(t[c]) : t[c].toFixed(4)) : t[c] ?? "–"))))))));
}

export function resetPortfolioChart() {
  equityChart?.chart.remove();
  equityChart = null;
}

/** Lag per topic, newest row per layer, champion, data checks. */
export function renderStatus(status) {
  const body = $("#status .body");
  if (!status) {
    fill(body, note("no status yet"));
    return;
  }
  const lag = Object.entries(status.lag);
  const failing = status.checks.filter((c) => !c.passed);
  fill(body,
    el("p", {}, "champion ", el("b", {}, status.champion ?? "none"), el("span", { class: "meta" }, ` · ${status.clients} dashboard connection${status.clients === 1 ? "" : "s"} on this worker`)),
    el("h3", {}, "Lag (records in Kafka not landed in bronze)"),
    lag.length ? el("table", {}, el("tbody", {}, lag.map(([topic, value]) => el("tr", {}, el("th", {}, topic),
      el("td", { class: `num ${typeof value === "number" && value > 0 ? "down" : ""}` }, String(value))))))
      : note(status.lag_note ?? "no lag measured"),
    el("h3", {}, "Freshness (newest row per layer)"),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "layer"), el("th", {}, "table"),
      el("th", { class: "num" }, "version"), el("th", {}, "newest row"), el("th", { class: "num" }, "age"))),
    el("tbody", {}, status.layers.map((l) => el("tr", {}, el("td", {}, l.layer), el("td", {}, l.table),
      el("td", { class: "num" }, l.version === null ? "–" : `v${l.version}`),
      el("td", {}, l.version === null ? "not materialized" : utc(l.newest)),
      el("td", { class: "num", dataset: { age: l.newest ?? "" } }, l.newest ? age(l.newest) : "–")))))),
    el("h3", {}, `Checks (${failing.length} failing)`),
    el("ul", {}, status.checks.map((c) => el("li", {}, el("span", { class: c.passed ? "ok" : "fail" }, c.passed ? "✓ " : "✗ "),
      el("b", {}, c.name), ` ${c.description}`))),
    el("p", { class: "meta" }, `status of ${utc(status.generated_at)}; the service checks what it reads — Dagster's asset checks are in the Dagster UI`));
}

/** Ages move with the clock: refresh them without a message. */
export function tickAges() {
  for (const cell of document.querySelectorAll("td[data-age]")) {
    if (cell.dataset.age) cell.textContent = age(cell.dataset.age);
  }
}

