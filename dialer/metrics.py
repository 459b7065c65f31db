"""Prometheus metrics of the dialer: the one place every metric is defined.

The runtime calls the small methods of `DialerMetrics` at each step of a call's life; the
dashboards and alert rules in deploy/ query exactly the names defined here, and
docs/metrics.md documents each one. Rules kept here so the rest of the code cannot break them:

* Names follow Prometheus conventions: a ``dialer_`` prefix, ``_total`` for counters,
  ``_seconds`` for durations, ratios as plain 0..1 gauges.
* Labels are only campaign / result / state / stage / window / code / node / reason (and the
  few named below: trunk, to, role, control, outcome), and their
  values are checked: a value that looks like a phone number (a run of 7+ digits) or is not a
  short identifier is refused with `MetricsLabelError`. Phone numbers and names never reach a
  label, so they can never reach Prometheus or Grafana.
* Every label set we know in advance (each `AttemptResult`, `AttemptStage`, `AgentState`, ...)
  is created as soon as a campaign or node is first seen, so PromQL returns a 0-valued series
  instead of nothing: `rate(dialer_attempts_total{result="abandoned"}[5m])` is 0, not empty,
  and alerts comparing series do not silently vanish.

prometheus-client's instruments are thread-safe, so the methods may be called from the asyncio
loop and from other threads alike; the HTTP endpoint runs in its own daemon thread.

Size: one class holds every metric so names, labels and pre-created series are reviewed in one
place; the trunk-health pair (``trunk`` / ``to`` labels, docs/trunks.md) took it past 600 lines,
and the web server's three (``role`` label, docs/web.md) went with them; the outcome
webhooks' five are a class of their own at the end (`WebhookMetrics`).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from common.vocabulary import (
    AbandonWindow,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
)

# prometheus-client adds a `<name>_created` series (process start timestamp) to every counter and
# histogram child; with ~20 label sets per campaign that doubles the series count for no use in
# our dashboards (Prometheus handles counter resets itself). The switch is process-wide and read
# at scrape time; the dialer is the only exporter in its process.
disable_created_metrics()

__all__ = [
    "ANSWER_TO_AGENT_BUCKETS",
    "CALL_CONTROLS",
    "CALL_CONTROL_OUTCOMES",
    "HELD_BACK_REASONS",
    "IN_FLIGHT_STAGES",
    "PREINITIALISED_SIP_CODES",
    "RING_BUCKETS",
    "TALK_BUCKETS",
    "TRUNK_UP",
    "WEB_ROLES",
    "WRAPUP_BUCKETS",
    "DialerMetrics",
    "MetricsLabelError",
    "MetricsServer",
    "MetricsValueError",
    "NodeView",
]

#: answer-to-agent latency: the product promise is "a fraction of a second"; the compliance
#: grace is 2 s, so the buckets are dense below 2 s and stop shortly after.
ANSWER_TO_AGENT_BUCKETS: Final = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: ring time from first 18x to answer or give-up; 15 s is the legal minimum, 25 s a default cap.
RING_BUCKETS: Final = (1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0)
#: talk time: a typical telemarketing call lasts 3-5 minutes (docs/domain.md).
TALK_BUCKETS: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 1200.0, 1800.0)
#: AMD decision time from answer: people are decided within ~2.5 s, machines by their
#: greeting budget (4.5 s by default), beeps later; the analysis gives up at amd_max_ms.
AMD_DECISION_BUCKETS: Final = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0)
WRAPUP_BUCKETS: Final = (2.0, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0)

#: verdicts an analysis can reach (NOT_RUN is no analysis, so no sample)
AMD_VERDICTS: Final[tuple[str, ...]] = tuple(
    v.value for v in AmdVerdict if v is not AmdVerdict.NOT_RUN
)

#: stages a live call can be in (ENDED calls are not "in flight").
IN_FLIGHT_STAGES: Final[tuple[str, ...]] = tuple(
    s.value for s in AttemptStage if s is not AttemptStage.ENDED
)

#: why a due lead was not dialed now. The first two are the calling rules the Compliance
#: dashboard shows (callee legal window, the called company's hours incl. lunch and holidays);
#: the others are the remaining gates of scheduling.callable.Gate.
#: the `dialer_trunk_up` value of each circuit-breaker state (sip/trunk_health.py)
TRUNK_UP: Final[Mapping[str, float]] = {"closed": 1.0, "half_open": 0.5, "open": 0.0}
#: the `control` and `outcome` labels of `dialer_call_controls_total` (docs/call-controls.md)
CALL_CONTROLS: Final[tuple[str, ...]] = (
    "hold", "resume", "dtmf", "listen", "listen_mode", "listen_stop")
CALL_CONTROL_OUTCOMES: Final[tuple[str, ...]] = ("ok", "refused", "node_full", "failed")
#: the `role` label of `dialer_web_sessions`: the web accounts' roles (docs/web.md)
WEB_ROLES: Final[tuple[str, ...]] = ("agent", "supervisor", "admin")
HELD_BACK_REASONS: Final[tuple[str, ...]] = (
    "callee_window",
    "company_hours",
    "abandon_lockout",
    "attempt_cap",
    "retry_delay",
    "refusal_cooldown",
)

#: SIP final codes created at 0 for each campaign so failure-ratio queries have series at
#: start; any other valid code (100-699) gets its own series the first time it is seen.
PREINITIALISED_SIP_CODES: Final[tuple[int, ...]] = (
    200, 404, 408, 480, 484, 486, 487, 500, 503, 600, 603,
)

_LABEL_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
#: seven digits in a row (ignoring separators) is how a phone number looks; refuse it.
_PHONE_LIKE_RE: Final = re.compile(r"\d(?:[\s.\-()]*\d){6,}")


class MetricsLabelError(ValueError):
    """A label value was refused (empty, too long, odd characters, or looks like personal data)."""


class MetricsValueError(ValueError):
    """A metric value was refused (negative, NaN or infinite where that makes no sense)."""


def _label(kind: str, value: object) -> str:
    """Return `value` as a safe label string, or raise naming the label and the problem."""
    text = value.value if hasattr(value, "value") else value  # StrEnum members and plain str
    if not isinstance(text, str):
        raise MetricsLabelError(f"{kind} label must be a string, got {type(value).__name__}")
    if _PHONE_LIKE_RE.search(text):
        # Do not echo the value: it may be a phone number.
        raise MetricsLabelError(
            f"{kind} label value looks like a phone number (7+ digits); "
            "labels must never carry personal data"
        )
    if not _LABEL_RE.match(text):
        raise MetricsLabelError(
            f"{kind} label value {text!r} is not a short identifier "
            "(1-64 chars: letters, digits, '_', '.', ':', '-'; starting with a letter or digit)"
        )
    return text


def _enum_label(kind: str, value: object, allowed: Iterable[str]) -> str:
    text = _label(kind, value)
    allowed = tuple(allowed)
    if text not in allowed:
        raise MetricsLabelError(f"unknown {kind} {text!r}; expected one of {', '.join(allowed)}")
    return text


def _amount(name: str, value: float, *, upper: float | None = None) -> float:
    """Check a measured value: finite, >= 0 and (for ratios) <= upper."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise MetricsValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(x) or math.isinf(x):
        raise MetricsValueError(f"{name} must be finite, got {x}")
    if x < 0:
        raise MetricsValueError(f"{name} must be >= 0, got {x}")
    if upper is not None and x > upper:
        raise MetricsValueError(f"{name} must be <= {upper}, got {x}")
    return x


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricsValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise MetricsValueError(f"{name} must be >= 0, got {value}")
    return value


def _sip_code(code: int) -> str:
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 699:
        raise MetricsValueError(f"sip_code must be an int in 100..699 or None, got {code!r}")
    return str(code)


class NodeView(Protocol):
    """What `DialerMetrics.set_nodes` reads from a SIP node (sip.pool.NodeHandle has it)."""

    index: int
    generation: int  # 0 for the first process, +1 per restart after a crash
    capacity: int
    in_use: int
    alive: bool


@dataclass(slots=True)
class MetricsServer:
    """The running /metrics HTTP endpoint (a daemon thread). Close it to free the port."""

    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the socket. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DialerMetrics:
    """Named instruments plus the small methods the runtime calls.

    Pass a fresh `CollectorRegistry` in tests (several instances may then live in one
    process); the default `None` also creates a private registry rather than using
    prometheus-client's global one, so importing this module never registers anything.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        campaigns: Iterable[str] = (),
        nodes: Iterable[str] = (),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._lock = threading.Lock()
        self._campaigns: set[str] = set()
        self._nodes: set[str] = set()
        self._windows: dict[str, set[str]] = {}
        self._generations: dict[str, int] = {}
        self._trunks: set[str] = set()
        #: the web server's metrics, registered when it starts (`add_web`)
        self.web_sessions: Gauge | None = None
        self.web_sign_in_failures: Counter | None = None
        self.web_agent_sockets: Gauge | None = None
        #: outcome webhooks (docs/webhooks.md): always exposed, so the dead-letter alert
        #: has a series (0) before the worker's first delivery
        self.webhooks = WebhookMetrics(r)
        #: the CRM API (docs/api.md): always exposed, 0 until the first request
        self.api = ApiMetrics(r)

        # --- attempts and SIP -------------------------------------------------------------
        self.attempts = Counter(
            "dialer_attempts", "Finished dial attempts by final result.",
            ["campaign", "result"], registry=r,
        )
        self.sip_final_responses = Counter(
            "dialer_sip_final_responses",
            "Final SIP response codes of finished attempts (attempts that got one).",
            ["campaign", "code"], registry=r,
        )
        self.ring_seconds = Histogram(
            "dialer_ring_seconds",
            "Ring time: first 18x to answer or give-up, per finished attempt that rang.",
            ["campaign"], buckets=RING_BUCKETS, registry=r,
        )
        self.talk_seconds = Histogram(
            "dialer_talk_seconds", "Talk time of calls connected to an agent.",
            ["campaign"], buckets=TALK_BUCKETS, registry=r,
        )
        self.wrapup_seconds = Histogram(
            "dialer_wrapup_seconds",
            "Agent wrap-up time: from the call's end until the agent leaves wrap-up "
            "(the disposition, or the dialer's wrap-up timeout).",
            ["campaign"], buckets=WRAPUP_BUCKETS, registry=r,
        )
        self.answer_to_agent_seconds = Histogram(
            "dialer_answer_to_agent_seconds",
            "Latency from a live answer (200 OK / AMD human) to the bridge with an agent.",
            ["campaign"], buckets=ANSWER_TO_AGENT_BUCKETS, registry=r,
        )
        self.amd_decision_seconds = Histogram(
            "dialer_amd_decision_seconds",
            "Answering-machine detection: time from the answer to the verdict, by verdict.",
            ["campaign", "verdict"], buckets=AMD_DECISION_BUCKETS, registry=r,
        )
        self.calls_in_flight = Gauge(
            "dialer_calls_in_flight", "Calls in progress by stage.",
            ["campaign", "stage"], registry=r,
        )
        self.lost_calls = Counter(
            "dialer_calls_lost", "Calls lost because the SIP node holding them died.",
            ["campaign"], registry=r,
        )
        # --- agents and pacing ------------------------------------------------------------
        self.agents = Gauge(
            "dialer_agents", "Agents by state.", ["campaign", "state"], registry=r,
        )
        self.dial_level = Gauge(
            "dialer_dial_level",
            "Customer calls in progress (dialing, ringing or answered) per working agent "
            "(logged in, not paused); 0 when no agent is working.",
            ["campaign"], registry=r,
        )
        self.answer_rate = Gauge(
            "dialer_answer_rate",
            "Answered share (0..1) of this run's dials: live answers plus answering "
            "machines, over calls dialed since the dialer started.",
            ["campaign"], registry=r,
        )
        self.abandon_rate = Gauge(
            "dialer_abandon_rate",
            "Abandoned share of live answers (0..1) over the compliance window.",
            ["campaign", "window"], registry=r,
        )
        self.abandon_rate_cap = Gauge(
            "dialer_abandon_rate_cap", "The configured abandon-rate cap (0..1) of the window.",
            ["campaign", "window"], registry=r,
        )
        # --- leads and compliance ---------------------------------------------------------
        self.hopper_depth = Gauge(
            "dialer_hopper_depth", "Leads claimed into the hopper, ready to dial.",
            ["campaign"], registry=r,
        )
        self.callable_leads = Gauge(
            "dialer_callable_leads", "Leads callable now (due and inside every calling rule).",
            ["campaign"], registry=r,
        )
        self.held_back_calls = Counter(
            "dialer_calls_held_back",
            "Due leads not dialed because a calling rule forbade it now, by rule.",
            ["campaign", "reason"], registry=r,
        )
        self.dnc_hits = Counter(
            "dialer_dnc_hits", "Leads stopped because their number is on a do-not-call list.",
            ["campaign"], registry=r,
        )
        self.call_controls = Counter(
            "dialer_call_controls",
            "Call controls (agents' hold, resume, keypad; supervisors' listen-in) by outcome.",
            ["campaign", "control", "outcome"], registry=r,
        )
        # --- SIP nodes --------------------------------------------------------------------
        self.node_capacity = Gauge(
            "dialer_node_capacity_calls", "Concurrent calls a SIP node can hold (measured).",
            ["node"], registry=r,
        )
        self.node_in_use = Gauge(
            "dialer_node_calls_in_use", "Calls a SIP node holds now.", ["node"], registry=r,
        )
        self.node_restarts = Counter(
            "dialer_node_restarts", "SIP node processes restarted after a crash.",
            ["node"], registry=r,
        )
        # --- trunks (docs/trunks.md): registered when the first trunk is reported -------
        self.trunk_up: Gauge | None = None
        self.trunk_transitions: Counter | None = None

        for c in campaigns:
            self.add_campaign(c)
        for n in nodes:
            self.add_node(n)

    # ------------------------------------------------------------------ label set-up
    def add_campaign(self, campaign: str) -> str:
        """Create every known label set of `campaign` at 0 (idempotent); return the label."""
        c = _label("campaign", campaign)
        with self._lock:
            if c in self._campaigns:
                return c
            self._campaigns.add(c)
        for result in AttemptResult:
            self.attempts.labels(c, result.value)
        for code in PREINITIALISED_SIP_CODES:
            self.sip_final_responses.labels(c, str(code))
        for stage in IN_FLIGHT_STAGES:
            self.calls_in_flight.labels(c, stage)
        for state in AgentState:
            self.agents.labels(c, state.value)
        for reason in HELD_BACK_REASONS:
            self.held_back_calls.labels(c, reason)
        for verdict in AMD_VERDICTS:
            self.amd_decision_seconds.labels(c, verdict)
        for control in CALL_CONTROLS:
            for outcome in CALL_CONTROL_OUTCOMES:
                self.call_controls.labels(c, control, outcome)
        for hist in (
            self.ring_seconds, self.talk_seconds, self.wrapup_seconds,
            self.answer_to_agent_seconds,
        ):
            hist.labels(c)
        for metric in (
            self.lost_calls, self.dnc_hits, self.dial_level, self.answer_rate,
            self.hopper_depth, self.callable_leads,
        ):
            metric.labels(c)
        return c

    def add_node(self, node: str) -> str:
        """Create the node's series at 0 (idempotent); return the label."""
        n = _label("node", node)
        with self._lock:
            if n in self._nodes:
                return n
            self._nodes.add(n)
        self.node_capacity.labels(n)
        self.node_in_use.labels(n)
        self.node_restarts.labels(n)
        return n

    def remove_campaign(self, campaign: str) -> None:
        """Drop the campaign's gauges (a stopped campaign should not show stale agents/calls).

        Counters and histograms stay: their totals are history and Prometheus handles
        series that stop. Unknown campaigns are ignored.
        """
        c = _label("campaign", campaign)
        with self._lock:
            if c not in self._campaigns:
                return
            self._campaigns.discard(c)
            windows = self._windows.pop(c, set())
        for stage in IN_FLIGHT_STAGES:
            self.calls_in_flight.remove(c, stage)
        for state in AgentState:
            self.agents.remove(c, state.value)
        for metric in (self.dial_level, self.answer_rate, self.hopper_depth,
                       self.callable_leads):
            metric.remove(c)
        for w in windows:
            self.abandon_rate.remove(c, w)
            self.abandon_rate_cap.remove(c, w)

    def remove_node(self, node: str) -> None:
        """Drop a retired node's gauges (its restart counter stays). Unknown nodes are ignored."""
        n = _label("node", node)
        with self._lock:
            if n not in self._nodes:
                return
            self._nodes.discard(n)
        self.node_capacity.remove(n)
        self.node_in_use.remove(n)

    # ------------------------------------------------------------------ per-call events
    def attempt_finished(
        self,
        campaign: str,
        result: AttemptResult | str,
        sip_code: int | None = None,
        ring_s: float | None = None,
        talk_s: float | None = None,
    ) -> None:
        """Count one attempt that reached its final state.

        `sip_code` is the final SIP response (None when there was none: transport error,
        lost node, preview skip); `ring_s` the time from first 18x to answer or give-up
        (None if it never rang); `talk_s` the agent talk time of a connected call.
        """
        c = self.add_campaign(campaign)
        r = _enum_label("result", result, (x.value for x in AttemptResult))
        code = None if sip_code is None else _sip_code(sip_code)
        ring = None if ring_s is None else _amount("ring_s", ring_s)
        talk = None if talk_s is None else _amount("talk_s", talk_s)
        self.attempts.labels(c, r).inc()
        if code is not None:
            self.sip_final_responses.labels(c, code).inc()
        if ring is not None:
            self.ring_seconds.labels(c).observe(ring)
        if talk is not None:
            self.talk_seconds.labels(c).observe(talk)

    def observe_answer_to_agent(self, campaign: str, seconds: float) -> None:
        """One live answer bridged to an agent after `seconds`."""
        c = self.add_campaign(campaign)
        self.answer_to_agent_seconds.labels(c).observe(_amount("seconds", seconds))

    def observe_amd(self, campaign: str, verdict: AmdVerdict | str, seconds: float) -> None:
        """One AMD verdict, reached `seconds` after the answer."""
        c = self.add_campaign(campaign)
        v = _enum_label("verdict", verdict, AMD_VERDICTS)
        self.amd_decision_seconds.labels(c, v).observe(_amount("seconds", seconds))

    def observe_wrapup(self, campaign: str, seconds: float) -> None:
        """One agent wrap-up (call end to disposition) that took `seconds`."""
        c = self.add_campaign(campaign)
        self.wrapup_seconds.labels(c).observe(_amount("seconds", seconds))

    def calls_lost(self, campaign: str, n: int = 1) -> None:
        """`n` calls of `campaign` were lost because the SIP node holding them died."""
        c = self.add_campaign(campaign)
        self.lost_calls.labels(c).inc(_count("n", n))

    def call_control(self, campaign: str, control: str, outcome: str) -> None:
        """One call control of `campaign` (a `CALL_CONTROLS` kind) ended with `outcome`."""
        c = self.add_campaign(campaign)
        self.call_controls.labels(c, _enum_label("control", control, CALL_CONTROLS),
                                  _enum_label("outcome", outcome, CALL_CONTROL_OUTCOMES)).inc()

    def node_restarted(self, node: str) -> None:
        """A SIP node process died and was restarted."""
        self.node_restarts.labels(self.add_node(node)).inc()

    def held_back(self, campaign: str, reason: str, n: int = 1) -> None:
        """`n` due leads were not dialed now because of calling rule `reason`.

        `reason` is one of `HELD_BACK_REASONS` (a `scheduling.callable.Gate` value other than
        "now", "callback" and "next_contact", which are agreed dates, not restrictions).
        """
        c = self.add_campaign(campaign)
        why = _enum_label("reason", reason, HELD_BACK_REASONS)
        self.held_back_calls.labels(c, why).inc(_count("n", n))

    def dnc_hit(self, campaign: str, n: int = 1) -> None:
        """`n` leads were stopped because their number is on a do-not-call list."""
        c = self.add_campaign(campaign)
        self.dnc_hits.labels(c).inc(_count("n", n))

    # ------------------------------------------------------------------ snapshots (gauges)
    def set_in_flight(self, campaign: str, stage_counts: Mapping[AttemptStage | str, int]) -> None:
        """Set calls in flight by stage; stages missing from `stage_counts` are set to 0."""
        c = self.add_campaign(campaign)
        values = dict.fromkeys(IN_FLIGHT_STAGES, 0)
        for stage, n in stage_counts.items():
            values[_enum_label("stage", stage, IN_FLIGHT_STAGES)] = _count(f"calls in {stage}", n)
        for stage, n in values.items():
            self.calls_in_flight.labels(c, stage).set(n)

    def set_agents(self, campaign: str, state_counts: Mapping[AgentState | str, int]) -> None:
        """Set agents by state; states missing from `state_counts` are set to 0."""
        c = self.add_campaign(campaign)
        states = tuple(s.value for s in AgentState)
        values = dict.fromkeys(states, 0)
        for state, n in state_counts.items():
            values[_enum_label("state", state, states)] = _count(f"agents in {state}", n)
        for state, n in values.items():
            self.agents.labels(c, state).set(n)

    def set_dial_level(self, campaign: str, level: float) -> None:
        """Set the dial level: customer calls in progress per working agent."""
        self.dial_level.labels(self.add_campaign(campaign)).set(_amount("dial level", level))

    def set_answer_rate(self, campaign: str, rate: float) -> None:
        """Set the answer rate: (live answers + machines) / dials since the dialer started."""
        self.answer_rate.labels(self.add_campaign(campaign)).set(
            _amount("answer rate", rate, upper=1.0)
        )

    def set_abandon(
        self, campaign: str, window: AbandonWindow | str, rate: float, cap: float
    ) -> None:
        """Set the measured abandon rate of `window` and the cap it is held to (both 0..1).

        `window` is an `AbandonWindow` value for the compliance window, or another short
        identifier (e.g. "15m") for an extra operational window the runtime reports.
        """
        c = self.add_campaign(campaign)
        w = _label("window", window)
        r = _amount("abandon rate", rate, upper=1.0)
        k = _amount("abandon cap", cap, upper=1.0)
        with self._lock:
            self._windows.setdefault(c, set()).add(w)
        self.abandon_rate.labels(c, w).set(r)
        self.abandon_rate_cap.labels(c, w).set(k)

    def set_hopper(self, campaign: str, depth: int, callable: int) -> None:
        """Set hopper depth and the number of leads callable now."""
        c = self.add_campaign(campaign)
        self.hopper_depth.labels(c).set(_count("hopper depth", depth))
        self.callable_leads.labels(c).set(_count("callable leads", callable))

    def set_node(self, node: str, capacity: int, in_use: int) -> None:
        """Set a SIP node's measured capacity and the calls it holds now."""
        n = self.add_node(node)
        cap = _count("node capacity", capacity)
        used = _count("node calls in use", in_use)
        if used > cap:
            raise MetricsValueError(f"node {n}: in_use {used} exceeds capacity {cap}")
        self.node_capacity.labels(n).set(cap)
        self.node_in_use.labels(n).set(used)

    def set_nodes(self, nodes: Iterable[NodeView]) -> None:
        """Publish a snapshot of the SIP node pool (e.g. `NodePool.nodes`) in one call.

        Node `i` is labelled ``node-i``. A dead node shows capacity 0 and no calls until its
        replacement reports in. Restarts are counted from `generation`: each increase since
        the last snapshot (or since 0, for the first one) adds to dialer_node_restarts_total,
        so a crash is counted even if no snapshot saw the node dead.
        """
        for n in nodes:
            name = f"node-{_count('node index', n.index)}"
            generation = _count(f"{name} generation", n.generation)
            if n.alive:
                self.set_node(name, n.capacity, n.in_use)
            else:
                self.set_node(name, 0, 0)
            with self._lock:
                seen = self._generations.get(name, 0)
                self._generations[name] = max(seen, generation)
            if generation > seen:
                self.node_restarts.labels(name).inc(generation - seen)

    def trunk_health(self, trunk: str, state: str, previous: str | None = None) -> None:
        """The breaker of `trunk` is in `state` ("closed", "half_open" or "open"); a move from
        a different `previous` state is counted as a transition (same or None: a snapshot)."""
        to = _enum_label("trunk state", state, TRUNK_UP)
        t = self.add_trunk(trunk)
        assert self.trunk_up is not None and self.trunk_transitions is not None
        self.trunk_up.labels(t).set(TRUNK_UP[to])
        if previous is not None and previous != to:
            self.trunk_transitions.labels(t, to).inc()

    def add_trunk(self, trunk: str) -> str:
        """Show a configured trunk as up (closed) with 0 transitions until it moves.

        The two trunk families are registered with the first trunk, so a dialer without trunks
        exposes none (every family it exposes has series)."""
        t = _label("trunk", trunk)
        with self._lock:
            if t in self._trunks:
                return t
            self._trunks.add(t)
            if self.trunk_up is None or self.trunk_transitions is None:
                self.trunk_up = Gauge(
                    "dialer_trunk_up",
                    "Circuit breaker of a SIP trunk: 1 closed (calls go), 0.5 half-open "
                    "(trial call), 0 open (calls refused).",
                    ["trunk"], registry=self.registry,
                )
                self.trunk_transitions = Counter(
                    "dialer_trunk_transitions",
                    "Circuit-breaker transitions of a SIP trunk, by the state entered.",
                    ["trunk", "to"], registry=self.registry,
                )
        assert self.trunk_up is not None and self.trunk_transitions is not None
        self.trunk_up.labels(t).set(1.0)
        for s in TRUNK_UP:
            self.trunk_transitions.labels(t, s)
        return t

    # ------------------------------------------------------------------ web server
    def add_web(self) -> None:
        """Register the web server's metrics (docs/web.md); a dialer without the web server
        exposes none of them. Roles are the three account roles, never a login."""
        with self._lock:
            if self.web_sessions is not None:
                return
            self.web_sessions = Gauge(
                "dialer_web_sessions", "Signed-in web sessions (not expired), by account role.",
                ["role"], registry=self.registry)
            self.web_sign_in_failures = Counter(
                "dialer_web_sign_in_failures",
                "Refused web sign-ins: wrong login or password, or rate limited.",
                registry=self.registry)
            self.web_agent_sockets = Gauge(
                "dialer_web_agent_sockets", "Open agent desktop WebSockets.",
                registry=self.registry)
        for role in WEB_ROLES:
            self.web_sessions.labels(role).set(0)

    def set_web_sessions(self, by_role: Mapping[str, int]) -> None:
        self.add_web()
        assert self.web_sessions is not None
        for role in WEB_ROLES:
            self.web_sessions.labels(role).set(_count("web sessions", by_role.get(role, 0)))

    def web_sign_in_failed(self) -> None:
        self.add_web()
        assert self.web_sign_in_failures is not None
        self.web_sign_in_failures.inc()

    def set_web_agent_sockets(self, n: int) -> None:
        self.add_web()
        assert self.web_agent_sockets is not None
        self.web_agent_sockets.set(_count("agent sockets", n))

    # ------------------------------------------------------------------ exposition
    def render(self) -> bytes:
        """The current exposition text (what a scrape of /metrics returns)."""
        return generate_latest(self.registry)

    def start_http(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve /metrics on `addr:port` from a daemon thread; port 0 picks a free port.

        Loopback by default: exposing metrics beyond the host is a deployment decision
        (deploy/ sets addr to 0.0.0.0 inside the container network).
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be an int in 0..65535, got {port!r}")
        try:
            server, thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as e:
            raise OSError(e.errno, f"cannot serve metrics on {addr}:{port}: {e.strerror}") from e
        return MetricsServer(host=addr, port=server.server_port, _server=server, _thread=thread)


class WebhookMetrics:
    """Outcome webhooks: deliveries by result (``delivered``, ``failed``: an attempt to be
    retried, ``dead``), the backlog, dead letters waiting for a person, and the lag from the
    outbox row's commit to the receiver's 2xx."""

    RESULTS: Final = ("delivered", "failed", "dead")

    def __init__(self, r: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "dialer_webhook_deliveries", "Webhook POST attempts by result.", ["result"],
            registry=r)
        self.dead_letters = Gauge(
            "dialer_webhook_dead_letters",
            "Webhook deliveries given up after the retry horizon (re-queue over the API).",
            registry=r)
        self.pending = Gauge(
            "dialer_webhook_pending", "Webhook deliveries waiting to be delivered.", registry=r)
        self.oldest_pending_seconds = Gauge(
            "dialer_webhook_oldest_pending_seconds",
            "Age of the oldest event with a pending delivery (0: none).", registry=r)
        self.lag_seconds = Histogram(
            "dialer_webhook_delivery_lag_seconds",
            "From the event's outbox commit to the receiver's 2xx.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
            registry=r)
        for result in self.RESULTS:
            self.deliveries.labels(result)

    def delivered(self, lag_s: float) -> None:
        self.deliveries.labels("delivered").inc()
        self.lag_seconds.observe(max(0.0, lag_s))

    def failed(self, *, dead: bool) -> None:
        self.deliveries.labels("dead" if dead else "failed").inc()

    def backlog(self, *, pending: int, dead: int, oldest_s: float) -> None:
        self.pending.set(_count("webhook pending", pending))
        self.dead_letters.set(_count("webhook dead letters", dead))
        self.oldest_pending_seconds.set(max(0.0, oldest_s))


class ApiMetrics:
    """The CRM API: requests by HTTP status (a fixed set; anything else is ``other``), and
    lead rows of bulk upserts and single creates by result. No label names a token."""

    STATUSES: Final = ("200", "201", "204", "400", "401", "403", "404", "405", "409", "413",
                       "422", "429", "500", "503", "other")
    ROW_RESULTS: Final = ("created", "updated", "unchanged", "rejected", "skipped")

    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "dialer_api_requests", "CRM API requests by HTTP status code.", ["code"], registry=r)
        self.lead_rows = Counter(
            "dialer_api_lead_rows", "Lead rows sent to the CRM API, by result.", ["result"],
            registry=r)
        for status in ("200", "401", "403", "422", "429"):
            self.requests.labels(status)
        for result in self.ROW_RESULTS:
            self.lead_rows.labels(result)

    def request(self, status: int) -> None:
        label = str(status)
        self.requests.labels(label if label in self.STATUSES else "other").inc()

    def rows(self, counts: Mapping[str, int]) -> None:
        for result, n in counts.items():
            if result in self.ROW_RESULTS and n > 0:
                self.lead_rows.labels(result).inc(n)

