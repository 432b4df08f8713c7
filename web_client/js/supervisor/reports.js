// Reports over a period: UTC dates, inclusive, by day or by reason. Apply (or a quick range)
// fetches GET /api/v1/reports once and points the CSV export at the same query; the totals,
// the charts and one table hold the numbers (the callbacks asked for, started and completed too).
import { $, el, setText } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { isNumber, none } from "../staff/format.js";
import { chartLegend, clearChart, renderBarChart } from "./charts.js";
import { addDays, clock, dayLabel, integer, percent, rating, reasonLabel, tileValue, todayUTC } from "./format.js";
import { CHARTS } from "./report-charts.js";

const MAX_FILLED_DAYS = 400; // a day report's x axis lists every day of the period up to this

let report = null; // {query, data}
let reportSeq = 0;

export const lastReport = () => report;

export function wireReports() {
  const form = $("sup-report-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadReport();
  });
  for (const button of form.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => {
      resetRange(Number(button.dataset.days));
      loadReport();
    });
  }
  const charts = $("sup-charts");
  for (const def of CHARTS) {
    const base = `supervisor.reports.charts.${def.id}`;
    const figure = el("figure", { className: "card chart", testid: def.testid });
    figure.dataset.chart = def.id;
    const caption = el("figcaption");
    caption.append(el("h2", { className: "chart-title", text: t(`${base}.title`) }), el("p", { className: "muted small chart-sub", text: t(`${base}.sub`) }));
    const box = el("div", { className: "chart-box" });
    figure.append(caption, box);
    if (def.series.length > 1) figure.append(el("div", { className: "legend-slot" }));
    charts.append(figure);
  }
}

/** The period: the last `days` days up to today. */
export function resetRange(days) {
  const to = todayUTC();
  $("sup-report-to").value = to;
  $("sup-report-from").value = addDays(to, -(Math.max(1, days) - 1));
}

function reportQuery() {
  const from = $("sup-report-from").value;
  const to = $("sup-report-to").value;
  const group = $("sup-report-group").value === "reason" ? "reason" : "day";
  if (!from || !to) return { problem: t("supervisor.reports.missing_dates") };
  if (from > to) return { problem: t("supervisor.reports.bad_range") };
  return { query: new URLSearchParams({ from, to, group }) };
}

export async function loadReport() {
  const { query, problem } = reportQuery();
  const error = $("sup-report-error");
  if (problem) {
    error.textContent = problem;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  $("sup-export").href = `/api/v1/reports.csv?${query}`;
  const seq = ++reportSeq;
  const section = document.getElementById("reports");
  section.setAttribute("aria-busy", "true");
  setText($("sup-report-status"), t("supervisor.reports.loading"));
  try {
    const data = await api("GET", `/api/v1/reports?${query}`);
    if (seq !== reportSeq) return;
    report = { query, data };
    renderReport(query, data);
  } catch (err) {
    if (seq !== reportSeq) return;
    setText($("sup-report-status"), "");
    if (err.status !== 401 && err.status !== 403) {
      error.textContent = err.message;
      error.hidden = false;
    }
  } finally {
    if (seq === reportSeq) section.removeAttribute("aria-busy");
  }
}

/** Draw the last report again (new labels arrived). */
export function redrawReport() {
  if (report) renderReport(report.query, report.data);
}

function renderReport(query, data) {
  const group = data.group || query.get("group");
  const from = query.get("from");
  const to = query.get("to");
  const rows = Array.isArray(data.rows) ? data.rows : [];
  const totals = data.totals || {};
  const groupWord = t(`supervisor.reports.status_group_${group === "reason" ? "reason" : "day"}`);
  setText($("sup-report-status"), t("supervisor.reports.status", { from: dayLabel(from, true), to: dayLabel(to, true), group: groupWord }));
  const empty = rows.length === 0 || !(Number(totals.calls) > 0 || Number(totals.callbacks_requested) > 0);
  $("sup-report-empty").hidden = !empty;
  $("sup-report-body").hidden = empty;
  if (empty) {
    for (const def of CHARTS) clearChart($(def.testid).querySelector(".chart-box"));
    return;
  }
  renderTotals(totals);
  renderCharts(categoriesFor(group, rows, from, to), group, totals);
  renderTable(group, rows, totals);
}

function renderTotals(tot) {
  setText(tileValue("sup-total-calls"), integer(tot.calls));
  setText(tileValue("sup-total-answered"), integer(tot.answered));
  setText(tileValue("sup-total-abandoned"), integer(tot.abandoned));
  setText(tileValue("sup-total-abandonment"), percent(tot.abandonment_rate));
  setText(tileValue("sup-total-wait"), t("supervisor.reports.totals.wait_value", { p50: clock(tot.wait_p50_s), p90: clock(tot.wait_p90_s) }));
  setText(tileValue("sup-total-handle"), clock(tot.handle_avg_s));
  const ratings = Number(tot.ratings) || 0;
  setText(tileValue("sup-total-rating"), ratings ? rating(tot.rating_avg) : none());
  setText($("sup-total-rating").querySelector(".tile-note"), t("supervisor.reports.totals.ratings", { count: ratings }));
  setText(tileValue("sup-total-flags"), percent(tot.flagged_share));
  const callbacks = { requested: integer(tot.callbacks_requested ?? 0), started: integer(tot.callbacks_started ?? 0), completed: integer(tot.callbacks_completed ?? 0) };
  setText(tileValue("sup-total-callbacks"), t("supervisor.reports.totals.callbacks_value", callbacks));
}

/** One category per row; by day, every day of the period, so quiet days show as gaps. */
function categoriesFor(group, rows, from, to) {
  if (group !== "day") {
    return rows.map((row) => ({ key: row.key, label: reasonLabel(row.key), longLabel: reasonLabel(row.key), row }));
  }
  const byDay = new Map(rows.map((row) => [row.key, row]));
  const days = [];
  for (let d = from; d <= to && days.length < MAX_FILLED_DAYS; d = addDays(d, 1)) days.push(d);
  for (const key of byDay.keys()) if (!days.includes(key)) days.push(key);
  days.sort();
  return days.map((key) => ({ key, label: dayLabel(key), longLabel: dayLabel(key, true), row: byDay.get(key) || { key, calls: 0 } }));
}

const numberOrNull = (v) => (isNumber(v) ? v : null);

function renderCharts(categories, group, totals) {
  const xLabel = t(group === "reason" ? "supervisor.reports.x_reason" : "supervisor.reports.x_day");
  for (const def of CHARTS) {
    const figure = $(def.testid);
    const base = `supervisor.reports.charts.${def.id}`;
    let series = def.series.map((s) => ({ id: s.id, label: t(`supervisor.reports.series.${s.id}`), values: categories.map((c) => numberOrNull(s.value(c.row))) }));
    series = series.filter((s, i) => !def.series[i].optional || s.values.some((v) => v > 0));
    renderBarChart(figure.querySelector(".chart-box"), {
      title: t(`${base}.title`),
      description: `${def.desc(totals)} ${t("supervisor.reports.chart_more")}`,
      xLabel,
      yLabel: t(`${base}.y`),
      kind: def.kind,
      mode: def.mode || "grouped",
      yMax: def.yMax ?? null,
      valueLabels: Boolean(def.valueLabels),
      format: def.format,
      tooltip: def.tooltip,
      categories,
      series,
    });
    const slot = figure.querySelector(".legend-slot");
    if (slot) slot.replaceChildren(chartLegend(series));
  }
}

function renderTable(group, rows, tot) {
  setText($("sup-report-key-head"), t(group === "reason" ? "supervisor.reports.columns.key_reason" : "supervisor.reports.columns.key_day"));
  const cells = (r) => [
    integer(r.calls),
    integer(r.answered),
    integer(r.abandoned),
    percent(r.abandonment_rate),
    clock(r.wait_p50_s),
    clock(r.wait_p90_s),
    clock(r.handle_avg_s),
    r.ratings ? rating(r.rating_avg) : none(),
    integer(r.ratings ?? 0),
    percent(r.flagged_share),
    integer(r.callbacks_requested ?? 0),
    integer(r.callbacks_started ?? 0),
    integer(r.callbacks_completed ?? 0),
  ];
  const line = (r, label, { testid, header = "th" } = {}) => {
    const tr = el("tr", { testid });
    if (r.key != null) tr.dataset.key = String(r.key);
    const head = el(header, { text: label });
    head.setAttribute("scope", "row");
    tr.append(head, ...cells(r).map((text) => el("td", { className: "num", text })));
    return tr;
  };
  const label = (key) => (group === "reason" ? reasonLabel(key) : dayLabel(key, true));
  $("sup-report-rows").replaceChildren(...rows.map((r) => line(r, label(r.key), { testid: "sup-report-row" })));
  $("sup-report-total-row").replaceChildren(line({ ...tot, key: null }, t("supervisor.reports.table_total")));
}
