// Business hours per queue, in the centre's time zone, with holidays: the document of
// GET/PUT /api/v1/business-hours, edited as a form (a queue per reason code or "*", seven weekdays with
// zero or more open intervals, holidays with optional special hours). The server checks the document and
// names the field of a mistake; that message is shown beside the Save button and the interval is marked.
import { $, el } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";
import { api } from "../staff/api.js";
import { announce, button, showError } from "./common.js";
import { currentReasons } from "./settings.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ALL = "*";

/** The document being edited (the API's shape); the form is drawn from it and writes into it. */
let doc = { timezone: "UTC", callback_wait_threshold_s: 600, queues: [] };

function dayName(day) {
  // 2024-01-01 was a Monday.
  const date = new Date(Date.UTC(2024, 0, 1 + DAYS.indexOf(day)));
  return new Intl.DateTimeFormat(currentLanguage(), { weekday: "long", timeZone: "UTC" }).format(date);
}

function queueName(code) {
  if (code === ALL) return t("admin.hours.all_queues");
  const reason = currentReasons().find((r) => r.code === code);
  return t("admin.hours.queue", { label: reason?.label ?? code, code });
}

// "24:00" (the end of a day) cannot be typed in <input type="time">: the form shows it as an until of 00:00.
const untilShown = (v) => (v === "24:00" ? "00:00" : v);
const untilSent = (v) => (v === "00:00" ? "24:00" : v);

function timeInput(value, testid, label, onChange) {
  const input = Object.assign(el("input", { testid }), { type: "time", value, required: true });
  input.setAttribute("aria-label", label);
  input.addEventListener("input", () => onChange(input.value));
  return input;
}

/**
 * A day's (or a holiday's) intervals, edited in place in ``list``: a from and an until per interval, a remove
 * button each, and an add button; "closed" when there are none. ``where`` prefixes the test ids.
 */
function intervals(list, where, name, closedKey) {
  const box = el("div", { className: "hours-intervals", testid: `${where}-intervals` });
  list.forEach((pair, n) => {
    const num = n + 1;
    const item = el("span", { className: "hours-interval", testid: `${where}-${n}` });
    item.append(
      timeInput(pair[0], `${where}-${n}-from`, t("admin.hours.opens", { day: name, n: num }), (v) => (pair[0] = v)),
      el("span", { className: "dash", text: "–" }),
      timeInput(untilShown(pair[1]), `${where}-${n}-until`, t("admin.hours.closes", { day: name, n: num }), (v) => (pair[1] = untilSent(v))),
    );
    const remove = button("×", `${where}-${n}-remove`, () => {
      list.splice(n, 1);
      render(`${where}-add`);
    }, "ghost icon");
    remove.setAttribute("aria-label", t("admin.hours.remove_interval", { day: name, n: num }));
    item.append(remove);
    box.append(item);
  });
  if (!list.length) box.append(el("span", { className: "hours-closed muted", text: t(closedKey), testid: `${where}-closed` }));
  const add = button(t("admin.hours.add_interval"), `${where}-add`, () => {
    const last = list.at(-1);
    list.push(last ? [last[1] === "24:00" ? "23:00" : last[1], "24:00"] : ["09:00", "17:00"]);
    render(`${where}-${list.length - 1}-from`);
  });
  add.setAttribute("aria-label", t("admin.hours.add_interval_on", { day: name }));
  box.append(add);
  return box;
}

function holidayRow(queue, holiday, m, prefix) {
  const where = `${prefix}-holiday-${m}`;
  const row = el("div", { className: "hours-holiday", testid: where });
  row.setAttribute("role", "group");
  const name = t("admin.hours.holiday_n", { n: m + 1 });
  row.setAttribute("aria-label", name);
  const date = Object.assign(el("input", { testid: `${where}-date` }), { type: "date", value: holiday.date ?? "", required: true });
  date.addEventListener("input", () => (holiday.date = date.value));
  const dateLabel = el("label");
  dateLabel.append(el("span", { text: t("admin.hours.holiday_date") }), date);
  holiday.hours ??= [];
  const remove = button(t("admin.hours.remove_holiday"), `${where}-remove`, () => {
    queue.holidays.splice(m, 1);
    render(`${prefix}-holiday-add`);
  }, "ghost");
  remove.setAttribute("aria-label", t("admin.hours.remove_holiday_n", { n: m + 1 }));
  row.append(dateLabel, intervals(holiday.hours, where, name, "admin.hours.closed_all_day"), remove);
  return row;
}

function queueBlock(queue, index) {
  const prefix = `hours-${queue.queue}`;
  const box = el("fieldset", { className: "hours-queue", testid: `hours-queue-${queue.queue}` });
  box.dataset.index = index;
  box.append(el("legend", { text: queueName(queue.queue) }));
  const week = el("div", { className: "hours-week" });
  for (const day of DAYS) {
    queue.weekly[day] ??= [];
    const row = el("div", { className: "hours-day", testid: `${prefix}-${day}` });
    row.setAttribute("role", "group");
    const label = el("span", { className: "hours-day-name", text: dayName(day) });
    label.id = `${prefix}-${day}-name`.replace(/\W/g, "_");
    row.setAttribute("aria-labelledby", label.id);
    row.append(label, intervals(queue.weekly[day], `${prefix}-${day}`, dayName(day), "admin.hours.closed"));
    week.append(row);
  }
  const holidays = el("div", { className: "hours-holidays", testid: `${prefix}-holidays` });
  queue.holidays ??= [];
  queue.holidays.forEach((h, m) => holidays.append(holidayRow(queue, h, m, prefix)));
  const addHoliday = button(t("admin.hours.add_holiday"), `${prefix}-holiday-add`, () => {
    queue.holidays.push({ date: "", hours: [] });
    render(`${prefix}-holiday-${queue.holidays.length - 1}-date`);
  });
  const removeQueue = button(t("admin.hours.remove_queue"), `hours-queue-remove-${queue.queue}`, () => {
    doc.queues.splice(index, 1);
    render("hours-queue-choice");
  }, "ghost");
  removeQueue.setAttribute("aria-label", t("admin.hours.remove_queue_named", { name: queueName(queue.queue) }));
  box.append(week, el("h3", { text: t("admin.hours.holidays") }), holidays, addHoliday, removeQueue);
  return box;
}

/** Draw the form from ``doc``; then focus the element with test id ``focus`` (after an add or remove). */
function render(focus) {
  const zones = Intl.supportedValuesOf("timeZone");
  if (!zones.includes(doc.timezone)) zones.unshift(doc.timezone);
  const tz = $("hours-timezone");
  tz.replaceChildren(...zones.map((z) => Object.assign(el("option", { text: z }), { value: z })));
  tz.value = doc.timezone;
  $("hours-threshold").value = String(doc.callback_wait_threshold_s / 60);
  $("hours-queues").replaceChildren(...doc.queues.map(queueBlock));
  $("hours-always-open").hidden = doc.queues.length > 0;
  const taken = new Set(doc.queues.map((q) => q.queue));
  const choices = [ALL, ...currentReasons().map((r) => r.code)].filter((c) => !taken.has(c));
  $("hours-queue-choice").replaceChildren(...choices.map((c) => Object.assign(el("option", { text: queueName(c) }), { value: c })));
  $("hours-queue-choice").disabled = $("hours-queue-add").disabled = !choices.length;
  $("hours-document").value = JSON.stringify(document_(), null, 2);
  if (focus) ($(focus) ?? $("hours-queue-add")).focus();
}

/** The document to send: the form's values, holidays without special hours sent without them. */
function document_() {
  return {
    timezone: doc.timezone,
    callback_wait_threshold_s: doc.callback_wait_threshold_s,
    queues: doc.queues.map((q) => ({
      queue: q.queue,
      weekly: Object.fromEntries(DAYS.map((d) => [d, q.weekly[d] ?? []])),
      holidays: (q.holidays ?? []).map((h) => ({ date: h.date, ...(h.hours?.length ? { hours: h.hours } : {}) })),
    })),
  };
}

/** A document typed as JSON, in the shape the form draws (the server checks the rest when it is saved). */
function normalise(value, previous) {
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("{ }");
  const queues = Array.isArray(value.queues) ? value.queues.filter((q) => q && typeof q.queue === "string") : [];
  return {
    timezone: typeof value.timezone === "string" ? value.timezone : previous.timezone,
    callback_wait_threshold_s: Number.isFinite(value.callback_wait_threshold_s) ? value.callback_wait_threshold_s : previous.callback_wait_threshold_s,
    queues: queues.map((q) => ({
      queue: q.queue,
      weekly: Object.fromEntries(DAYS.map((d) => [d, Array.isArray(q.weekly?.[d]) ? q.weekly[d] : []])),
      holidays: Array.isArray(q.holidays) ? q.holidays.filter((h) => h && typeof h === "object") : [],
    })),
  };
}

/** Mark the interval or date a server message names ("queues[0].weekly.mon[1]: ..."), clearing older marks. */
function markField(message) {
  document.querySelectorAll('[data-testid="hours-form"] [aria-invalid]').forEach((n) => {
    n.removeAttribute("aria-invalid");
    n.removeAttribute("aria-describedby");
  });
  const m = /queues\[(\d+)\]\.(?:weekly\.(\w+)|holidays\[(\d+)\]\.(date|hours))(?:\[(\d+)\])?/.exec(message || "");
  const queue = m && doc.queues[Number(m[1])];
  if (!queue) return;
  const prefix = `hours-${queue.queue}`;
  const where = m[2] ? `${prefix}-${m[2]}` : `${prefix}-holiday-${m[3]}`;
  const target = m[4] === "date" ? $(`${where}-date`) : m[5] != null ? $(`${where}-${m[5]}`) : $(`${where}-intervals`);
  target?.querySelectorAll("input").forEach((n) => n.setAttribute("aria-invalid", "true"));
  if (target?.tagName === "INPUT") target.setAttribute("aria-invalid", "true");
  document.querySelectorAll('[data-testid="hours-form"] [aria-invalid]').forEach((n) => n.setAttribute("aria-describedby", "hours-error"));
}

function fail(err) {
  showError("hours-error", err);
  markField(err?.message);
}

export async function loadHours() {
  try {
    doc = await api("GET", "/api/v1/business-hours");
    render();
  } catch (err) {
    fail(err);
  }
}

export function wireHours() {
  $("hours-timezone").addEventListener("change", (ev) => (doc.timezone = ev.target.value));
  $("hours-threshold").addEventListener("input", (ev) => (doc.callback_wait_threshold_s = Math.round(Number(ev.target.value) * 60)));
  $("hours-queue-add").addEventListener("click", () => {
    const queue = $("hours-queue-choice").value;
    if (!queue) return;
    doc.queues.push({ queue, weekly: Object.fromEntries(DAYS.map((d) => [d, []])), holidays: [] });
    render(`hours-${queue}-mon-add`);
  });
  $("hours-json-apply").addEventListener("click", () => {
    try {
      doc = normalise(JSON.parse($("hours-document").value), doc);
      fail(null);
      render("hours-save");
    } catch (err) {
      fail(new Error(t("admin.settings.not_json", { error: err.message })));
    }
  });
  $("hours-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fail(null);
    try {
      doc = await api("PUT", "/api/v1/business-hours", document_());
      render();
      announce(t("admin.hours.saved"));
    } catch (err) {
      fail(err);
    }
  });
}
