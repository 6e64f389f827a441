// The dashboard page: connects to /ws, keeps what the server sent, renders it. No polling: the
// server pushes a snapshot on connect and then only changes (see serving/board_model.py).
import { SymbolChart } from "./charts.js";
import { el, fill, utc } from "./dom.js";
import {
  renderMarket, renderPortfolio, renderQuality, renderSentiment, renderStatus,
  resetPortfolioChart, resetSentimentChart, tickAges,
} from "./sections.js";

const state = { prices: null, predictions: null, sentiment: null, portfolio: null, status: null };
const charts = new Map();
const $ = (selector) => document.querySelector(selector);
let messages = 0;

// --- the token: ?token= on the first load, kept for this tab only, removed from the address bar
const TOKEN_KEY = "marketlake.token";
const params = new URLSearchParams(location.search);
if (params.has("token")) {
  sessionStorage.setItem(TOKEN_KEY, params.get("token"));
  params.delete("token");
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

// --- theme: the system's unless chosen here
const THEME_KEY = "marketlake.theme";
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  for (const chart of charts.values()) chart.retheme();
  resetSentimentChart();
  resetPortfolioChart();
  renderSentiment(state.sentiment, charts);
  renderPortfolio(state.portfolio);
}
const systemDark = matchMedia("(prefers-color-scheme: dark)");
document.documentElement.dataset.theme = localStorage.getItem(THEME_KEY) ?? (systemDark.matches ? "dark" : "light");
$("#theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});

function setConnection(stateName, text) {
  const badge = $("#connection");
  badge.dataset.state = stateName;
  badge.textContent = text;
}

function banner(text) {
  const node = $("#banner");
  node.hidden = !text;
  node.textContent = text ?? "";
}

// --- rendering
function modelLine() {
  const p = state.predictions;
  const s = state.status;
  fill($("#model-line"),
    p?.model_version ? [`champion ${p.model_name} `, el("b", {}, `v${p.model_version}`)] : (p?.note ?? "no champion model"),
    s ? ` · updated ${utc(s.generated_at)}` : "");
}

function chartFor(symbol) {
  let chart = charts.get(symbol);
  if (!chart) {
    chart = new SymbolChart($("#charts"), symbol);
    charts.set(symbol, chart);
  }
  return chart;
}

function renderCharts() {
  const prices = state.prices;
  const symbols = new Set((prices?.symbols ?? []).map((s) => s.symbol));
  for (const [symbol, chart] of charts) {
    if (!symbols.has(symbol)) {
      chart.remove();
      charts.delete(symbol);
    }
  }
  const noteNode = $("#charts-note");
  noteNode.hidden = symbols.size > 0;
  noteNode.textContent = prices?.note ?? "no candles yet";
  for (const entry of prices?.symbols ?? []) chartFor(entry.symbol).setData(entry);
}

function renderPredictions() {
  const board = state.predictions;
  const bySymbol = new Map((board?.symbols ?? []).map((s) => [s.symbol, s]));
  for (const [symbol, chart] of charts) chart.setPrediction(bySymbol.get(symbol) ?? null, board);
  renderQuality(board);
}

function renderChanges() {
  for (const p of state.prices?.market?.prices ?? []) charts.get(p.symbol)?.setChange(p.change_24h);
}

const handlers = {
  snapshot(payload) {
    Object.assign(state, {
      prices: payload.prices, predictions: payload.predictions, sentiment: payload.sentiment,
      portfolio: payload.portfolio, status: payload.status,
    });
    renderCharts();
    renderPredictions();
    renderMarket(state.prices, state.predictions);
    renderChanges();
    renderSentiment(state.sentiment, charts);
    renderPortfolio(state.portfolio);
    renderStatus(state.status);
  },
  price_update(payload) {
    if (!payload.symbols.length && !payload.market) {  // the candles are gone (a note says why)
      state.prices = payload;
      renderCharts();
    }
    const known = new Map((state.prices?.symbols ?? []).map((s) => [s.symbol, s]));
    for (const entry of payload.symbols) {
      if (!known.has(entry.symbol)) {
        known.set(entry.symbol, entry);
        chartFor(entry.symbol).setData(entry);
        charts.get(entry.symbol).setPrediction((state.predictions?.symbols ?? []).find((s) => s.symbol === entry.symbol) ?? null, state.predictions);
      } else {
        chartFor(entry.symbol).apply(entry);
      }
    }
    state.prices = { ...(state.prices ?? {}), symbols: [...known.values()], market: payload.market ?? state.prices?.market, note: null };
    $("#charts-note").hidden = known.size > 0;
    renderMarket(state.prices, state.predictions);
    renderChanges();
  },
  prediction_update(payload) {
    state.predictions = payload;
    renderPredictions();
    renderMarket(state.prices, state.predictions);
  },
  sentiment_update(payload) {
    const seen = new Set(payload.posts.map((p) => p.post_id));
    const posts = [...payload.posts, ...(state.sentiment?.posts ?? []).filter((p) => !seen.has(p.post_id))];
    state.sentiment = { ...payload, posts: posts.slice(0, 50) };
    renderSentiment(state.sentiment, charts);
  },
  portfolio_update(payload) {
    state.portfolio = payload;
    renderPortfolio(payload);
  },
  status(payload) {
    state.status = payload;
    renderStatus(payload);
  },
};

// --- the socket: reconnects with back-off; a refused token stops it
let retry = 1;
function connect() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const socket = new WebSocket(url);
  setConnection("connecting", "connecting");
  socket.addEventListener("open", () => {
    retry = 1;
    setConnection("live", "live");
    banner(null);
  });
  socket.addEventListener("message", (event) => {
    const { type, payload } = JSON.parse(event.data);
    const handle = handlers[type];
    if (!handle) return;
    handle(payload);
    messages += 1;
    document.body.dataset.messages = String(messages);
    document.body.dataset.lastMessage = type;
    modelLine();
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 1008) {
      setConnection("refused", "token refused");
      banner("The service refused the token: open the page as /dashboard?token=<MARKETLAKE_API_TOKEN>.");
      return;
    }
    setConnection("closed", `reconnecting in ${retry} s`);
    banner(event.code === 1013 ? `The service is busy (${event.reason || "try again later"}): reconnecting.` : null);
    setTimeout(connect, retry * 1000);
    retry = Math.min(retry * 2, 30);
  });
}

connect();
setInterval(tickAges, 10_000);
