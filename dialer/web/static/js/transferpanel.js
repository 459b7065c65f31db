// The Transfer panel's picker (docs/call-controls.md): the campaign's ready agents and its
// named groups, read from /api/agent/transfer-targets each time the panel opens; a click on an
// agent puts the login in the "to" field (another click on a second agent makes it a list),
// a click on a group puts "@name" there (its longest-idle ready agent takes the call).

import { request } from "./api.js";
import { $, clear, h } from "./dom.js";
import { t } from "./i18n.js";

let seq = 0;

export async function loadTransferTargets() {
  const mine = ++seq;
  const box = $("transfer-picker");
  box.setAttribute("aria-busy", "true");
  let agents = [];
  let groups = [];
  try {
    const got = await request("GET", "/api/agent/transfer-targets");
    agents = got.agents ?? [];
    groups = got.groups ?? [];
  } catch {
    agents = null;
  }
  if (mine !== seq) return; // the panel was opened again meanwhile
  clear(box);
  box.removeAttribute("aria-busy");
  if (agents === null || (!agents.length && !groups.length)) {
    box.append(h("span", { class: "hint" },
      t(agents === null ? "call.transfer_targets_failed" : "call.transfer_targets_none")));
    return;
  }
  for (const a of agents) {
    const b = h("button", { class: "btn", type: "button", "data-login": a.login }, a.login);
    b.addEventListener("click", () => pick(a.login));
    box.append(b);
  }
  for (const g of groups) {
    const b = h("button", { class: "btn", type: "button", "data-group": g.name },
      t("call.transfer_group", { name: g.name, ready: g.ready }));
    b.disabled = !g.ready;
    b.addEventListener("click", () => {
      $("transfer-to").value = `@${g.name}`;
      $("transfer-to").focus();
    });
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
