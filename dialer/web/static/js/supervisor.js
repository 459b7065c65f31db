// The supervisor console's placeholder: who is signed in, and sign-out.

import { api, ApiError, setCsrf, signOutAndLeave } from "./api.js";
import { applyI18n, initI18n } from "./i18n.js";

await initI18n();
applyI18n();
document.getElementById("btn-signout").addEventListener("click", signOutAndLeave);
try {
  const me = await api.me();
  setCsrf(me.csrf);
  document.getElementById("who").textContent = me.display_name || me.login;
} catch (e) {
  if (e instanceof ApiError && e.status === 401) window.location.assign("/login");
}
