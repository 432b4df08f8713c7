// The report's six charts: how each reads a report row (values per category, in API units),
// how it formats them and how its description sums up the period.
import { t } from "../i18n.js";
import { isNumber } from "../staff/format.js";
import { clock, integer, percent, rating } from "./format.js";

function otherCalls(row) {
  const rest = (Number(row.calls) || 0) - (Number(row.answered) || 0) - (Number(row.abandoned) || 0);
  return rest > 0 ? rest : 0;
}

/** A chart of one series with its value above each bar; its description names the period's `total(totals)`. */
function oneSeries(id, seriesId, kind, format, value, total = null) {
  const desc = total && ((tot) => t(`supervisor.reports.charts.${id}.desc`, { value: format(total(tot)) }));
  return { id, testid: `sup-chart-${id}`, kind, valueLabels: true, format, series: [{ id: seriesId, value }], desc };
}

export const CHARTS = [
  {
    id: "volume",
    testid: "sup-chart-volume",
    kind: "number",
    mode: "stacked",
    valueLabels: true,
    format: integer,
    series: [
      { id: "answered", value: (r) => r.answered },
      { id: "abandoned", value: (r) => r.abandoned },
      { id: "other", value: (r) => otherCalls(r), optional: true },
    ],
    desc: (tot) => t("supervisor.reports.charts.volume.desc", { calls: integer(tot.calls), answered: integer(tot.answered), abandoned: integer(tot.abandoned) }),
  },
  {
    id: "wait",
    testid: "sup-chart-wait",
    kind: "time",
    mode: "grouped",
    format: clock,
    series: [
      { id: "wait_p50", value: (r) => r.wait_p50_s },
      { id: "wait_p90", value: (r) => r.wait_p90_s },
    ],
    desc: (tot) => t("supervisor.reports.charts.wait.desc", { p50: clock(tot.wait_p50_s), p90: clock(tot.wait_p90_s) }),
  },
  oneSeries("handle", "handle", "time", clock, (r) => r.handle_avg_s, (tot) => tot.handle_avg_s),
  oneSeries("abandon", "abandonment", "percent", percent, (r) => r.abandonment_rate, (tot) => tot.abandonment_rate),
  {
    ...oneSeries("rating", "rating", "rating", rating, (r) => (r.ratings ? r.rating_avg : null)),
    yMax: 5,
    tooltip: (cat, _s, v) => t("supervisor.reports.charts.rating.tooltip", { label: cat.longLabel, value: rating(v), count: integer(cat.row?.ratings ?? 0) }),
    desc: (tot) =>
      isNumber(tot.rating_avg) && tot.ratings
        ? t("supervisor.reports.charts.rating.desc", { value: rating(tot.rating_avg), count: integer(tot.ratings) })
        : t("supervisor.reports.charts.rating.desc_none"),
  },
  oneSeries("flags", "flags", "percent", percent, (r) => r.flagged_share, (tot) => tot.flagged_share),
];
