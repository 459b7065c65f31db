// The disposition form: outcome (keys 1..9), notes, next contact in the callee's time zone
// (checked with /api/agent/check-contact before it can be saved), callback scope, do-not-call.
// It builds the `disposition` command's fields; desktop.js sends it and closes the form on
// the ack.

import { $, clear, h } from "./dom.js";
import { explainWhy, formatDateTime, has, t } from "./i18n.js";
import { dispositionChoices, quickCode, wallClock, zoneDate, zonedWallTimeToIso } from "./util.js";

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

export class DispositionForm {
  /**
   * @param {(payload) => void} onSubmit   the disposition's fields (attempt_id, code, ...)
   * @param {(attemptId, iso) => Promise<{allowed, reason, reason_code, reasons, zone}>} checkContact
   */
  constructor({ onSubmit, checkContact }) {
    this.onSubmit = onSubmit;
    this.checkContact = checkContact;
    this.form = $("dispo-form");
    this.attemptId = null;
    this.choices = [];
    this.code = null;
    this.codeBeforeDnc = null;
    this.zone = BROWSER_ZONE;
    this.zoneKnown = false;
    this.ready = true;
    this.busy = false;
    this.check = { status: "none" };
    this.checkSeq = 0;
    this.checkTimer = null;

    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    for (const id of ["dispo-date", "dispo-time"]) {
      $(id).addEventListener("input", () => this.scheduleCheck());
      $(id).addEventListener("change", () => this.scheduleCheck());
    }
    $("dispo-clear-date").addEventListener("click", () => {
      $("dispo-date").value = "";
      $("dispo-time").value = "";
      this.scheduleCheck();
      $("dispo-date").focus();
    });
    $("dispo-dnc").addEventListener("change", () => this.onDnc());
    $("dispo-use-next").addEventListener("click", () => this.useSuggestion());
  }

  get isOpen() {
    return !this.form.hidden;
  }

  /**
   * Show the form for one call. Opening it again for the same call only updates what is
   * given (the catalog, the zone, the queue), so nothing the agent typed is lost.
   */
  open({ attemptId, title, catalog, preselect = null, zone = null, queue = 0, ready = true, saved = null }) {
    const fresh = attemptId !== this.attemptId || !this.isOpen;
    if (fresh) {
      this.attemptId = attemptId;
      this.code = null;
      this.codeBeforeDnc = null;
      this.busy = false;
      this.check = { status: "none" };
      this.form.reset();
      this.setStatus("", "");
      $("dispo-check").textContent = "";
    }
    $("dispo-heading").textContent = title;
    $("dispo-queue").textContent = queue > 0 ? t("dispo.queue", { count: queue }) : "";
    this.setCatalog(catalog);
    if (zone) this.setZone(zone);
    else if (fresh) this.setZone(null);
    this.setReady(ready);
    if (fresh && saved) this.fill(saved);
    else if (fresh && preselect) this.selectCode(preselect);
    this.form.hidden = false;
    this.refresh();
    return fresh;
  }

  close() {
    this.form.hidden = true;
    this.attemptId = null;
    clearTimeout(this.checkTimer);
  }

  /** Put a queued disposition back in the form (after a reload, while it is being re-sent). */
  fill(p) {
    this.selectCode(p.code);
    $("dispo-notes").value = p.notes ?? "";
    if (p.next_contact_at) {
      const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(p.next_contact_at);
      if (m) {
        $("dispo-date").value = m[1];
        $("dispo-time").value = m[2];
        this.check = { status: "ok", iso: p.next_contact_at };
      }
    }
    for (const r of this.form.elements.scope) r.checked = r.value === (p.callback_scope ?? "agent");
    $("dispo-dnc").checked = p.code === quickCode(this.choices, "dnc");
  }

  setCatalog(catalog) {
    const choices = dispositionChoices(catalog);
    const same = JSON.stringify(choices) === JSON.stringify(this.choices);
    this.choices = choices;
    if (same && $("dispo-codes").childElementCount) return;
    const grid = clear($("dispo-codes"));
    for (const c of choices) {
      grid.append(h("button", {
        type: "button", class: "code-btn", dataset: { code: c.code }, "aria-pressed": "false",
        "aria-keyshortcuts": c.key ?? undefined, onclick: () => this.selectCode(c.code, true),
      }, c.key ? h("kbd", {}, c.key) : null, h("span", { class: "code-label" }, c.label),
      c.needs_callback ? h("span", { class: "code-tag" }, t("dispo.tag_date")) : null));
    }
    const dnc = quickCode(choices, "dnc");
    $("dispo-dnc").closest("label").hidden = !dnc;
    if (this.code && !choices.some((c) => c.code === this.code)) this.code = null;
  }

  setZone(zone) {
    const changed = (zone ?? BROWSER_ZONE) !== this.zone;
    this.zone = zone ?? BROWSER_ZONE;
    this.zoneKnown = Boolean(zone);
    $("dispo-zone").textContent = this.zoneKnown
      ? t("dispo.zone_callee", { zone: this.zone.replace(/_/g, " ") })
      : t("dispo.zone_own", { zone: this.zone.replace(/_/g, " ") });
    $("dispo-date").min = zoneDate(Date.now(), this.zone);
    if (changed && this.isOpen) this.scheduleCheck();
  }

  /** false while the call is still on: the form can be filled, not saved. */
  setReady(ready) {
    this.ready = ready;
    this.refresh();
  }

  setBusy(busy) {
    this.busy = busy;
    this.refresh();
  }

  setStatus(kind, text) {
    const s = $("dispo-status");
    s.textContent = text;
    s.dataset.kind = kind;
  }

  get selected() {
    return this.choices.find((c) => c.code === this.code) ?? null;
  }

  selectCode(code, byHand = false) {
    if (this.busy) return;
    if (!this.choices.some((c) => c.code === code)) return;
    this.code = code;
    const dnc = quickCode(this.choices, "dnc");
    $("dispo-dnc").checked = Boolean(dnc) && code === dnc;
    if (byHand) this.setStatus("", "");
    this.refresh();
    if (this.selected?.needs_callback && byHand && !$("dispo-date").value) $("dispo-date").focus();
  }

  /** A digit key: choose the n-th outcome. */
  selectByKey(key) {
    const c = this.choices.find((x) => x.key === key);
    if (!c || $("dispo-dnc").checked) return false;
    this.selectCode(c.code, true);
    this.form.querySelector(`[data-code="${c.code}"]`)?.focus();
    return true;
  }

  onDnc() {
    const dnc = quickCode(this.choices, "dnc");
    if (!dnc) return;
    if ($("dispo-dnc").checked) {
      this.codeBeforeDnc = this.code === dnc ? null : this.code;
      this.code = dnc;
      $("dispo-date").value = "";
      $("dispo-time").value = "";
      this.scheduleCheck();
    } else {
      this.code = this.codeBeforeDnc;
    }
    this.refresh();
  }

  refresh() {
    const dnc = $("dispo-dnc").checked;
    for (const b of $("dispo-codes").querySelectorAll(".code-btn")) {
      b.setAttribute("aria-pressed", String(b.dataset.code === this.code));
      b.disabled = this.busy || (dnc && b.dataset.code !== this.code);
    }
    const sel = this.selected;
    const hasDate = Boolean($("dispo-date").value || $("dispo-time").value);
    $("dispo-scope").hidden = dnc || !(sel?.needs_callback || hasDate);
    for (const id of ["dispo-date", "dispo-time", "dispo-clear-date"]) $(id).disabled = this.busy || dnc;
    $("dispo-notes").readOnly = this.busy;
    $("dispo-dnc").disabled = this.busy;
    for (const r of this.form.elements.scope) r.disabled = this.busy;
    $("dispo-submit").disabled = this.busy || !this.ready || this.check.status === "refused";
    $("dispo-date").required = Boolean(sel?.needs_callback);
    $("dispo-time").required = Boolean(sel?.needs_callback);
  }

  focusFirst() {
    const target = this.form.querySelector(".code-btn[aria-pressed='true']")
      ?? this.form.querySelector(".code-btn") ?? $("dispo-notes");
    target.focus();
  }

  // ---- next contact check

  /** Fill in the first time the calling rules allow (the check's `next_allowed`). */
  useSuggestion() {
    const iso = this.suggestion;
    if (!iso) return;
    const w = wallClock(Date.parse(iso), this.zone);
    const pad = (n) => String(n).padStart(2, "0");
    $("dispo-date").value = `${w.year}-${pad(w.month)}-${pad(w.day)}`;
    $("dispo-time").value = `${pad(w.hour)}:${pad(w.minute)}`;
    this.scheduleCheck();
    $("dispo-time").focus();
  }

  showSuggestion(iso) {
    const b = $("dispo-use-next");
    this.suggestion = iso ?? null;
    b.hidden = !iso;
    if (iso) {
      b.textContent = t("dispo.use_next", {
        when: formatDateTime(iso, { weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit", timeZone: this.zone }),
      });
    }
  }

  scheduleCheck() {
    clearTimeout(this.checkTimer);
    const date = $("dispo-date").value;
    const time = $("dispo-time").value;
    const out = $("dispo-check");
    out.dataset.kind = "";
    this.showSuggestion(null);
    if (!date && !time) {
      this.check = { status: "none" };
      out.textContent = "";
    } else if (!date || !time) {
      this.check = { status: "incomplete" };
      out.textContent = t("dispo.need_both");
    } else {
      const iso = zonedWallTimeToIso(date, time, this.zone);
      if (!iso) {
        this.check = { status: "incomplete" };
      } else if (Date.parse(iso) <= Date.now()) {
        this.check = { status: "refused", iso };
        out.textContent = t("dispo.in_past");
        out.dataset.kind = "error";
      } else {
        this.check = { status: "checking", iso };
        out.textContent = t("dispo.checking");
        const seq = ++this.checkSeq;
        this.check.done = new Promise((resolve) => {
          this.checkTimer = setTimeout(() => this.runCheck(seq, iso).then(resolve), 300);
        });
      }
    }
    this.refresh();
  }

  async runCheck(seq, iso) {
    const attemptId = this.attemptId;
    let result;
    try {
      result = await this.checkContact(attemptId, iso);
    } catch {
      result = null;
    }
    if (seq !== this.checkSeq || attemptId !== this.attemptId) return;
    const out = $("dispo-check");
    const when = formatDateTime(iso, { dateStyle: "full", timeStyle: "short", timeZone: this.zone });
    if (result === null) {
      this.check = { status: "unknown", iso };
      out.textContent = t("dispo.check_failed");
      out.dataset.kind = "warn";
    } else if (result.allowed) {
      this.check = { status: "ok", iso };
      out.textContent = t("dispo.allowed", { when });
      out.dataset.kind = "ok";
    } else {
      this.check = { status: "refused", iso, reason: result.reason };
      // every refusal by its code, in the page's language (the English `reason` is for
      // API users, and for a server too old to send codes)
      const whys = Array.isArray(result.reasons) && result.reasons.length ? result.reasons
        : result.reason_code ? [{ code: result.reason_code, params: result.reason_params ?? {}, text: result.reason ?? "" }] : [];
      const reason = whys.length ? whys.map(explainWhy).join("; ")
        : (result.reason ?? t("dispo.refused_no_reason"));
      out.textContent = t("dispo.refused", { reason });
      out.dataset.kind = "error";
      if (result.next_allowed && result.next_allowed !== iso) this.showSuggestion(result.next_allowed);
    }
    if (result?.zone && !this.zoneKnown) this.setZone(result.zone);
    this.refresh();
  }

  // ---- submit

  async submit() {
    if (this.busy || this.attemptId === null) return;
    if (!this.ready) {
      this.setStatus("warn", t("dispo.wait_call_end"));
      return;
    }
    const sel = this.selected;
    if (!sel) {
      this.setStatus("error", t("dispo.choose"));
      this.focusFirst();
      return;
    }
    if (this.check.status === "checking") {
      await this.check.done;
      return this.submit();
    }
    if (this.check.status === "incomplete") {
      this.setStatus("error", t("dispo.need_both"));
      ($("dispo-date").value ? $("dispo-time") : $("dispo-date")).focus();
      return;
    }
    if (this.check.status === "refused") {
      this.setStatus("error", t("dispo.fix_date"));
      $("dispo-date").focus();
      return;
    }
    if (sel.needs_callback && this.check.status === "none") {
      this.setStatus("error", t("dispo.need_date"));
      $("dispo-date").focus();
      return;
    }
    const iso = this.check.status === "ok" || this.check.status === "unknown" ? this.check.iso : null;
    const scope = iso ? (this.form.elements.scope.value || "agent") : "agent";
    this.onSubmit({
      attempt_id: this.attemptId,
      code: sel.code,
      notes: $("dispo-notes").value.slice(0, 4000),
      next_contact_at: iso,
      callback_scope: scope,
    });
  }
}
