// Translations: one JSON catalog per language in /static/i18n/, chosen from
// navigator.languages (English when none matches). Every string a person sees comes from
// a catalog: `t("key", {param})`, or `data-i18n="key"` / `data-i18n-attr="attr:key;..."`
// on elements of the HTML pages.

import { interpolate } from "./util.js";

export const LANGUAGES = ["en", "sv"];
const FALLBACK = "en";

/** The first of the browser's preferred languages we have a catalog for (pure). */
export function pickLanguage(preferred, available = LANGUAGES) {
  for (const tag of preferred ?? []) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (available.includes(primary)) return primary;
  }
  return FALLBACK;
}

/** The locale for Intl: the browser's own tag of that language (sv-SE, en-GB), else the language. */
export function localeFor(preferred, lang) {
  for (const tag of preferred ?? []) {
    if (String(tag).toLowerCase().split("-")[0] === lang) return tag;
  }
  return lang;
}

let messages = {};
let fallbackMessages = {};
export let lang = FALLBACK;
export let locale = FALLBACK;
let plural = new Intl.PluralRules(FALLBACK);

async function fetchCatalog(code) {
  const r = await fetch(`/static/i18n/${code}.json`, { cache: "no-cache" });
  if (!r.ok) throw new Error(`catalog ${code}: HTTP ${r.status}`);
  return r.json();
}

/** Load the catalog for this browser; call once before rendering. */
export async function initI18n(preferred = navigator.languages ?? [navigator.language]) {
  lang = pickLanguage(preferred);
  locale = localeFor(preferred, lang);
  try {
    locale = Intl.getCanonicalLocales(locale)[0];
  } catch {
    locale = lang;
  }
  plural = new Intl.PluralRules(locale);
  fallbackMessages = await fetchCatalog(FALLBACK);
  messages = lang === FALLBACK ? fallbackMessages : await fetchCatalog(lang).catch(() => fallbackMessages);
  document.documentElement.lang = lang;
  return { lang, locale };
}

function lookup(table, key) {
  return key.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), table);
}

/** Is there a catalog string for `key`? */
export function has(key) {
  return lookup(messages, key) !== undefined || lookup(fallbackMessages, key) !== undefined;
}

/**
 * The string for `key` with `{params}` filled in. A value that is an object of plural forms
 * (`{"one": ..., "other": ...}`) is chosen by `params.count`. An unknown key shows as itself.
 */
export function t(key, params = {}) {
  let value = lookup(messages, key);
  if (value === undefined) value = lookup(fallbackMessages, key);
  if (value === undefined) {
    console.warn("i18n: missing key", key);
    return key;
  }
  if (typeof value === "object") {
    const form = plural.select(Number(params.count ?? 0));
    value = value[form] ?? value.other ?? key;
  }
  const shown = { ...params };
  if (typeof shown.count === "number") shown.count = formatNumber(shown.count);
  return interpolate(value, shown);
}

/** Fill `data-i18n` text and `data-i18n-attr` attributes under `root`. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

export function formatNumber(n, options = {}) {
  return new Intl.NumberFormat(locale, options).format(n);
}

export function formatDateTime(value, options = { dateStyle: "medium", timeStyle: "short" }) {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value ?? "");
  return new Intl.DateTimeFormat(locale, options).format(d);
}

export function formatTime(value, timeZone) {
  const d = value instanceof Date ? value : new Date(value);
  const opts = { hour: "numeric", minute: "2-digit" };
  if (timeZone) opts.timeZone = timeZone;
  return new Intl.DateTimeFormat(locale, opts).format(d);
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A refusal's params as the page shows them: weekdays and dates in the page's language. */
function reasonParams(why) {
  const params = { ...(why.params ?? {}) };
  for (const [k, v] of Object.entries(params)) {
    // a calendar date of the company or the callee: the same day wherever the browser is
    if (typeof v === "string" && ISO_DATE.test(v)) params[k] = formatDateTime(`${v}T12:00:00Z`, { dateStyle: "medium", timeZone: "UTC" });
  }
  if (params.weekday && has(`weekdays.${params.weekday}`)) params.weekday = t(`weekdays.${params.weekday}`);
  // a holiday the server could not name is shown by its country
  if ("name" in params && !params.name) params.name = params.country ?? "";
  return params;
}

/**
 * A refusal from the server (`{code, params, text}`: a closed company, a callee outside their
 * calling hours ...) in the page's language; the server's English `text` when the catalog has
 * no wording for its code.
 */
export function explainWhy(why) {
  if (!why) return "";
  const key = `contact_reasons.${why.code}`;
  if (!has(key)) return why.text ?? "";
  return t(key, reasonParams(why));
}

/**
 * Why the company is closed now, as its state ("Closed – opens at 09:00"): `closed.<code>`;
 * null when the catalog has no such wording (the caller then uses explainWhy).
 */
export function explainClosed(why) {
  if (!why || !has(`closed.${why.code}`)) return null;
  return t(`closed.${why.code}`, reasonParams(why));
}
