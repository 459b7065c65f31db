// The Transfer panel's picker (docs/call-controls.md): the campaign's ready agents, read from
// /api/agent/transfer-targets each time the panel opens; a click puts the login in the
// "to" field (another click on a second agent makes it a group).

import { request } from "./api.js";
import { $, clear, h } from "./dom.js";
import { t } from "./i18n.js";

let seq = 0;

export async function loadTransferTargets() {
  const mine = ++seq;
  const box = $("transfer-picker");
  box.setAttribute("aria-busy", "true");
  let agents = [];
  try {
    agents = (await request("GET", "/api/agent/transfer-targets")).agents ?? [];
  } catch {
    agents = null;
  }
  if (mine !== seq) return; // the panel was opened again meanwhile
  clear(box);
  box.removeAttribute("aria-busy");
  if (agents === null || !agents.length) {
    box.append(h("span", { class: "hint" },
      t(agents === null ? "call.transfer_targets_failed" : "call.transfer_targets_none")));
    return;
  }
  for (const a of agents) {
    const b = h("button", { class: "btn", type: "button", "data-login": a.login }, a.login);
    b.addEventListener("click", () => pick(a.login));
    box.append(b);
  }
}

function pick(login) {
  const field = $("transfer-to");
  const have = field.value.split(/[\s,]+/).filter(Boolean);
  if (!have.includes(login)) have.push(login);
  field.value = have.join(", ");
  field.focus();
}
