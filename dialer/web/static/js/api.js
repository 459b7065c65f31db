// HTTP calls to the dialer's web server (docs/web.md). Every state-changing request
// carries X-CSRF-Token; errors become ApiError with the status, the server's `detail` and
// Retry-After (seconds) when given.

import { parseRetryAfter } from "./util.js";

let csrfToken = null;

export function setCsrf(token) {
  csrfToken = token;
}

export function csrf() {
  return csrfToken;
}

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(`HTTP ${status}: ${detail ?? ""}`);
    this.status = status; // 0: the server could not be reached
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export async function request(method, path, body = undefined, { timeoutMs = 10000 } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store", signal: ctrl.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, String(e?.message ?? e));
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  const text = await r.text().catch(() => "");
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail
      : data && data.detail ? JSON.stringify(data.detail) : text.slice(0, 200);
    throw new ApiError(r.status, detail, parseRetryAfter(r.headers.get("Retry-After")));
  }
  return data;
}

export const api = {
  signIn: (login, password) => request("POST", "/api/session", { login, password }),
  signOut: () => request("DELETE", "/api/session"),
  me: () => request("GET", "/api/me"),
  context: (attemptId) => request("GET", `/api/agent/context/${encodeURIComponent(attemptId)}`),
  leadContext: (leadId) => request("GET", `/api/agent/lead-context/${encodeURIComponent(leadId)}`),
  checkContact: (attemptId, at) => request("GET",
    `/api/agent/check-contact?attempt_id=${encodeURIComponent(attemptId)}&at=${encodeURIComponent(at)}`),
  callbacks: () => request("GET", "/api/agent/callbacks"),
  day: () => request("GET", "/api/agent/day"),
};

/** Sign out (the session row is deleted) and go to the sign-in page, whatever happens. */
export async function signOutAndLeave() {
  try {
    await api.signOut();
  } catch {
    // signed out already, or the server is away: the sign-in page is the right place either way
  }
  window.location.assign("/login");
}
