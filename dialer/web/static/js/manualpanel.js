// Manual dial and "call back now" (docs/call-controls.md): shown while the agent is paused
// and has a lead from its last call. The agent types the number (the lead's own to start
// with), dials it this once or as the lead's new number, or calls the lead back now; the
// dialer checks the number (DNC, the callee's calling window) and refuses with the reason.

import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** Show or hide the panel for the agent's state; `lead`: {id, name, phone} or null. */
export function renderManual({ live, state, lead, busy }) {
  const show = Boolean(lead) && state === "paused";
  const panel = $("manual-panel");
  const was = panel.hidden;
  panel.hidden = !show;
  if (!show) return;
  if (was || panel.dataset.leadId !== String(lead.id)) {
    panel.dataset.leadId = String(lead.id);
    $("manual-number").value = lead.phone ?? "";
    $("manual-status").textContent = "";
  }
  $("manual-label").textContent = t("manual.label", { name: lead.name || `#${lead.id}` });
  $("btn-manual-dial").disabled = !live || busy;
  $("btn-call-back-now").disabled = !live || busy;
}

/**
 * Wire the buttons: `send(type, fields)` sends an agent command and resolves on its ack
 * (the desktop shows a refusal itself); `lead()` is the panel's lead.
 */
export function wireManual({ send, lead, onBusy }) {
  const run = (type, fields) => {
    const l = lead();
    if (!l) return;
    onBusy(true);
    $("manual-status").textContent = t("manual.calling");
    send(type, { lead_id: l.id, ...fields }).then(() => {
      $("manual-status").textContent = "";
    }, (e) => {
      $("manual-status").textContent = e?.message ? t("manual.refused", { message: e.message }) : "";
    }).finally(() => onBusy(false));
  };
  const dial = () => {
    const number = $("manual-number").value.trim();
    if (!number || $("btn-manual-dial").disabled || $("manual-panel").hidden) {
      $("manual-number").focus();
      return;
    }
    run("manual_dial", { number, attach: $("manual-new-number").checked ? "new_number" : "one_off" });
  };
  $("btn-manual-dial").addEventListener("click", dial);
  $("btn-call-back-now").addEventListener("click", () => {
    if (!$("btn-call-back-now").disabled) run("call_back_now", {});
  });
  $("manual-number").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      dial();
    }
  });
  return dial;
}
