// The sign-in page: POST /api/session, then "/" (the server sends each role to its page).

import { api, ApiError } from "./api.js";
import { applyI18n, initI18n, t } from "./i18n.js";

const form = document.getElementById("login-form");
const loginInput = document.getElementById("login");
const passwordInput = document.getElementById("password");
const msg = document.getElementById("login-msg");
const submit = document.getElementById("login-submit");
let lockedUntil = 0;
let lockTimer = null;

function show(text) {
  msg.textContent = text;
  msg.hidden = !text;
}

function lockFor(seconds) {
  lockedUntil = Date.now() + seconds * 1000;
  clearInterval(lockTimer);
  const tick = () => {
    const left = Math.ceil((lockedUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(lockTimer);
      submit.disabled = false;
      show("");
      return;
    }
    submit.disabled = true;
    show(t("login.too_many", { seconds: left }));
  };
  tick();
  lockTimer = setInterval(tick, 1000);
}

async function onSubmit(ev) {
  ev.preventDefault();
  if (Date.now() < lockedUntil) return;
  const login = loginInput.value.trim();
  const password = passwordInput.value;
  if (!login || !password) {
    show(t("login.missing"));
    (login ? passwordInput : loginInput).focus();
    return;
  }
  submit.disabled = true;
  show("");
  try {
    await api.signIn(login, password);
    window.location.assign("/");
    return;
  } catch (e) {
    const status = e instanceof ApiError ? e.status : 0;
    if (status === 401 || status === 403) {
      show(t("login.wrong"));
      passwordInput.value = "";
      passwordInput.focus();
    } else if (status === 429) {
      lockFor(e.retryAfter ?? 60);
      return;
    } else if (status === 422) {
      show(t("login.missing"));
    } else if (status === 0) {
      show(t("errors.unreachable"));
    } else {
      show(t("errors.server", { status }));
    }
  }
  submit.disabled = false;
}

await initI18n();
applyI18n();
form.hidden = false;
form.addEventListener("submit", onSubmit);
loginInput.focus();
