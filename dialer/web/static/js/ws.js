// The agent WebSocket (/ws/agent): one JSON message per text frame, the agent protocol of
// docs/agent-protocol.md. Reconnects by itself with backoff; every command gets a fresh id
// and its reply (ack or error) is matched by ref_id; events seen twice are dropped.
// No DOM here: the desktop gives callbacks.

import { backoffDelay, IdWindow, isoWithOffset, newId } from "./util.js";

export class CommandError extends Error {
  /** code: a protocol error code, or "offline" / "disconnected" / "timeout" from this side. */
  constructor(code, message = "", reply = null) {
    super(`${code}: ${message}`);
    this.code = code;
    this.serverMessage = message;
    this.reply = reply;
  }
}

export class AgentSocket {
  /**
   * @param {object} o
   * @param {string} o.login
   * @param {string} o.session        the tab's session id
   * @param {() => Promise<string>} o.prepare  called before each connect: returns the ws URL
   *        (the desktop refreshes /api/me there; a throw counts as a failed attempt)
   * @param {() => void} o.onOpen     connected: send `login` here
   * @param {(msg) => void} o.onEvent every event that is not a reply to our own command
   * @param {(status) => void} o.onStatus {kind: "connecting"|"online"|"offline"|"stopped", retryAt?}
   */
  constructor({ login, session, prepare, onOpen, onEvent, onStatus,
    WebSocketImpl = globalThis.WebSocket, replyTimeoutMs = 15000, idleCheckMs = 30000 }) {
    Object.assign(this, { login, session, prepare, onOpen, onEvent, onStatus, WebSocketImpl,
      replyTimeoutMs, idleCheckMs });
    this.ws = null;
    this.failures = 0;
    this.stopped = false;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.seen = new IdWindow(1000);
    this.retryTimer = null;
    this.idleTimer = null;
  }

  get online() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Stop for good (signed out, or this window was taken over): no more sends or reconnects. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.idleTimer);
    this.failAll("disconnected");
    if (this.ws) {
      try {
        this.ws.close(1000);
      } catch {
        // already closed
      }
    }
    this.ws = null;
    this.onStatus({ kind: "stopped" });
  }

  /** Reconnect now (e.g. the network came back) instead of waiting for the backoff. */
  kick() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.onStatus({ kind: "connecting" });
    let url;
    try {
      url = await this.prepare();
    } catch (e) {
      this.scheduleRetry(e);
      return;
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = new this.WebSocketImpl(url);
    } catch (e) {
      this.scheduleRetry(e);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.failures = 0;
      this.onStatus({ kind: "online" });
      this.armIdleCheck();
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.receive(ev.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.idleTimer);
      this.failAll("disconnected");
      this.scheduleRetry(null);
    };
    ws.onerror = () => {
      // onclose follows and does the work
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.failures++);
    this.onStatus({ kind: "offline", retryAt: Date.now() + delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // After a quiet spell, ask for the state: a connection that died without a close frame
  // (a cable, a sleeping laptop) is found and replaced instead of hanging.
  armIdleCheck() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (!this.online) return;
      this.send("get_state").catch((e) => {
        if (e.code === "timeout" && this.ws) this.ws.close(4000);
      });
      this.armIdleCheck();
    }, this.idleCheckMs);
  }

  failAll(code) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new CommandError(code));
    }
    this.pending.clear();
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return; // bad network input is dropped, never fatal
    }
    if (!msg || typeof msg !== "object") return;
    this.armIdleCheck();
    if (this.seen.seen(msg.id)) return;
    if (msg.type === "ack" || (msg.type === "error" && msg.ref_id)) {
      const p = this.pending.get(msg.ref_id);
      if (!p) return; // a reply to another session's command (docs/agent-protocol.md)
      this.pending.delete(msg.ref_id);
      clearTimeout(p.timer);
      if (msg.type === "ack") p.resolve(msg);
      else p.reject(new CommandError(msg.code, msg.message ?? "", msg));
      return;
    }
    this.onEvent(msg);
  }

  /** Send a command; resolves with its ack, rejects with a CommandError. */
  send(type, fields = {}) {
    if (this.stopped || !this.online) {
      return Promise.reject(new CommandError(this.stopped ? "stopped" : "offline"));
    }
    const id = newId();
    const msg = { type, v: 1, id, ts: isoWithOffset(), login: this.login, session: this.session, ...fields };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CommandError("timeout"));
      }, this.replyTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify(msg));
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new CommandError("offline", String(e)));
      }
    });
  }
}
