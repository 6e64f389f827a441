// DOM building and number formatting. Text always goes in as text (never as HTML), so nothing
// from the lake or the registry can inject markup.

/** An element: el("td", {class: "num"}, "1.23", childNode, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const note = (text) => el("p", { class: "note" }, text);

const finite = (v) => typeof v === "number" && Number.isFinite(v);

export function price(v) {
  if (!finite(v)) return "–";
  const digits = Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 6;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(2, digits) });
}

export function pct(v, digits = 2) {
  return finite(v) ? `${(v * 100).toFixed(digits)}%` : "–";
}

export function signedPct(v, digits = 2) {
  return finite(v) ? `${v > 0 ? "+" : ""}${(v * 100).toFixed(digits)}%` : "–";
}

/** A coloured span of a signed change. */
export function change(v, digits = 2) {
  const cls = !finite(v) ? "muted" : v > 0 ? "up" : v < 0 ? "down" : "flat";
  return el("span", { class: cls }, signedPct(v, digits));
}

export function compact(v) {
  if (!finite(v)) return "–";
  for (const [factor, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
    if (Math.abs(v) >= factor) return `${(v / factor).toFixed(2)}${suffix}`;
  }
  return v.toFixed(2);
}

export function prob(v) {
  return finite(v) ? v.toFixed(3) : "–";
}

/** "2024-03-01 14:00 UTC" from Unix seconds or an ISO string. */
export function utc(t) {
  if (t === null || t === undefined) return "–";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** "42 s", "5 min", "3.1 h", "12.0 d" since an ISO time or Unix seconds. */
export function age(t) {
  if (t === null || t === undefined) return "–";
  const ms = typeof t === "number" ? t * 1000 : Date.parse(t);
  let s = (Date.now() - ms) / 1000;
  const sign = s < 0 ? "-" : "";
  s = Math.abs(s);
  if (s < 120) return `${sign}${s.toFixed(0)} s`;
  if (s < 7200) return `${sign}${(s / 60).toFixed(0)} min`;
  if (s < 172800) return `${sign}${(s / 3600).toFixed(1)} h`;
  return `${sign}${(s / 86400).toFixed(1)} d`;
}

/** The page's colours for the charts, from the CSS variables of the current theme. */
export function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    bg: v("--panel"), text: v("--text"), muted: v("--muted"), line: v("--soft"),
    border: v("--line"), up: v("--up"), down: v("--down"), flat: v("--flat"),
  };
}
