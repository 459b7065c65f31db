"""dialer/metrics.py, checked through a real HTTP scrape of `start_http` (the text Prometheus
gets), plus the guards that keep personal data and nonsense values out."""

from __future__ import annotations

import math
import re
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_promql import REPO
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.vocabulary import AbandonWindow, AgentState, AmdVerdict, AttemptResult, AttemptStage
from dialer.metrics import (
    HELD_BACK_REASONS,
    IN_FLIGHT_STAGES,
    DialerMetrics,
    MetricsLabelError,
    MetricsServer,
    MetricsValueError,
)

# bounded label names only (enums and configured names): never a number or a person
ALLOWED_LABELS = {"campaign", "result", "state", "stage", "window", "code", "node", "reason",
                  "verdict", "trunk", "to", "role",  # role: agent / supervisor / admin
                  "control", "outcome"}  # dialer_call_controls_total: enums of dialer.metrics
C = "spring-offer"


@pytest.fixture
def metrics() -> DialerMetrics:
    return DialerMetrics(CollectorRegistry(), campaigns=[C], nodes=["node-0"])


@pytest.fixture
def served(metrics: DialerMetrics) -> Iterator[tuple[DialerMetrics, MetricsServer]]:
    server = metrics.start_http(0)
    try:
        yield metrics, server
    finally:
        server.close()


def scrape(server: MetricsServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Sample name + labels -> value, parsed from a real GET of /metrics."""
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_every_label_set_exists_at_zero_before_any_event(served) -> None:
    _, server = served
    s = scrape(server)
    for r in AttemptResult:
        assert val(s, "dialer_attempts_total", campaign=C, result=r.value) == 0
    for stage in AttemptStage:
        if stage is not AttemptStage.ENDED:
            assert val(s, "dialer_calls_in_flight", campaign=C, stage=stage.value) == 0
    assert ("dialer_calls_in_flight", frozenset({("campaign", C), ("stage", "ended")})) not in s
    for state in AgentState:
        assert val(s, "dialer_agents", campaign=C, state=state.value) == 0
    for reason in HELD_BACK_REASONS:
        assert val(s, "dialer_calls_held_back_total", campaign=C, reason=reason) == 0
    for name in ("dialer_calls_lost_total", "dialer_dnc_hits_total", "dialer_dial_level",
                 "dialer_answer_rate", "dialer_hopper_depth", "dialer_callable_leads",
                 "dialer_answer_to_agent_seconds_count", "dialer_ring_seconds_count",
                 "dialer_talk_seconds_count", "dialer_wrapup_seconds_count"):
        assert val(s, name, campaign=C) == 0, name
    assert val(s, "dialer_sip_final_responses_total", campaign=C, code="503") == 0
    assert val(s, "dialer_node_restarts_total", node="node-0") == 0
    assert not any(name.endswith("_created") for name, _ in s), "no _created series"


def test_attempt_finished_counts_result_code_and_durations(served) -> None:
    m, server = served
    m.attempt_finished(C, AttemptResult.CONNECTED, 200, ring_s=7.5, talk_s=185.0)
    m.attempt_finished(C, "busy", 486, ring_s=None)
    m.attempt_finished(C, AttemptResult.LOST)  # node died: no SIP code, no durations
    s = scrape(server)
    assert val(s, "dialer_attempts_total", campaign=C, result="connected") == 1
    assert val(s, "dialer_attempts_total", campaign=C, result="busy") == 1
    assert val(s, "dialer_attempts_total", campaign=C, result="lost") == 1
    assert val(s, "dialer_sip_final_responses_total", campaign=C, code="200") == 1
    assert val(s, "dialer_sip_final_responses_total", campaign=C, code="486") == 1
    assert val(s, "dialer_ring_seconds_count", campaign=C) == 1
    assert val(s, "dialer_ring_seconds_sum", campaign=C) == 7.5
    assert val(s, "dialer_ring_seconds_bucket", campaign=C, le="5.0") == 0
    assert val(s, "dialer_ring_seconds_bucket", campaign=C, le="8.0") == 1
    assert val(s, "dialer_talk_seconds_sum", campaign=C) == 185.0
    assert val(s, "dialer_talk_seconds_bucket", campaign=C, le="180.0") == 0
    assert val(s, "dialer_talk_seconds_bucket", campaign=C, le="300.0") == 1


def test_new_campaign_and_uncommon_sip_code_get_series(served) -> None:
    m, server = served
    m.attempt_finished("autumn", AttemptResult.FAILED, 502)
    s = scrape(server)
    assert val(s, "dialer_sip_final_responses_total", campaign="autumn", code="502") == 1
    assert val(s, "dialer_attempts_total", campaign="autumn", result="abandoned") == 0
    assert val(s, "dialer_agents", campaign="autumn", state="ready") == 0


def test_snapshots_set_every_member_and_zero_the_missing(served) -> None:
    m, server = served
    m.set_in_flight(C, {AttemptStage.RINGING: 3, "bridged": 2})
    m.set_agents(C, {AgentState.READY: 4, AgentState.TALKING: 2})
    m.set_in_flight(C, {AttemptStage.DIALING: 1})  # later snapshot: ringing/bridged drop to 0
    m.set_agents(C, {AgentState.TALKING: 5})
    m.set_dial_level(C, 2.25)
    m.set_answer_rate(C, 0.31)
    m.set_abandon(C, AbandonWindow.ROLLING_30D, 0.012, 0.03)
    m.set_abandon(C, "15m", 0.02, 0.03)
    m.set_hopper(C, depth=40, callable=1234)
    m.set_node("node-0", capacity=4, in_use=3)
    m.observe_answer_to_agent(C, 0.18)
    m.observe_wrapup(C, 22.0)
    m.calls_lost(C, 2)
    m.node_restarted("node-0")
    m.held_back(C, "company_hours", 5)
    m.dnc_hit(C)
    s = scrape(server)
    assert val(s, "dialer_calls_in_flight", campaign=C, stage="dialing") == 1
    assert val(s, "dialer_calls_in_flight", campaign=C, stage="ringing") == 0
    assert val(s, "dialer_calls_in_flight", campaign=C, stage="bridged") == 0
    assert val(s, "dialer_agents", campaign=C, state="talking") == 5
    assert val(s, "dialer_agents", campaign=C, state="ready") == 0
    assert val(s, "dialer_dial_level", campaign=C) == 2.25
    assert val(s, "dialer_answer_rate", campaign=C) == 0.31
    assert val(s, "dialer_abandon_rate", campaign=C, window="rolling_30d") == 0.012
    assert val(s, "dialer_abandon_rate_cap", campaign=C, window="rolling_30d") == 0.03
    assert val(s, "dialer_abandon_rate", campaign=C, window="15m") == 0.02
    assert val(s, "dialer_hopper_depth", campaign=C) == 40
    assert val(s, "dialer_callable_leads", campaign=C) == 1234
    assert val(s, "dialer_node_capacity_calls", node="node-0") == 4
    assert val(s, "dialer_node_calls_in_use", node="node-0") == 3
    assert val(s, "dialer_answer_to_agent_seconds_bucket", campaign=C, le="0.2") == 1
    assert val(s, "dialer_answer_to_agent_seconds_bucket", campaign=C, le="0.15") == 0
    assert val(s, "dialer_wrapup_seconds_count", campaign=C) == 1
    assert val(s, "dialer_calls_lost_total", campaign=C) == 2
    assert val(s, "dialer_node_restarts_total", node="node-0") == 1
    assert val(s, "dialer_calls_held_back_total", campaign=C, reason="company_hours") == 5
    assert val(s, "dialer_dnc_hits_total", campaign=C) == 1


def test_remove_campaign_and_node_drop_gauges_but_keep_history(served) -> None:
    m, server = served
    m.attempt_finished(C, AttemptResult.BUSY, 486)
    m.set_abandon(C, AbandonWindow.CALENDAR_DAY, 0.01, 0.03)
    m.remove_campaign(C)
    m.remove_node("node-0")
    m.remove_campaign("never-seen")  # ignored
    s = scrape(server)
    assert val(s, "dialer_attempts_total", campaign=C, result="busy") == 1
    assert not any(name in ("dialer_agents", "dialer_calls_in_flight", "dialer_abandon_rate",
                            "dialer_dial_level", "dialer_node_capacity_calls")
                   for name, _ in s)
    m.set_agents(C, {"ready": 1})  # coming back re-creates every label set
    s = scrape(server)
    assert val(s, "dialer_agents", campaign=C, state="paused") == 0


def test_names_units_and_labels_follow_prometheus_conventions(served) -> None:
    m, server = served
    families = list(m.registry.collect())
    assert families
    for f in families:
        assert f.name.startswith("dialer_"), f.name
        if f.type == "counter":
            assert not f.name.endswith("_total")  # prometheus-client adds it when exposing
        if f.type == "histogram":
            assert f.name.endswith("_seconds"), f"histogram {f.name} must be in seconds"
        for sample in f.samples:
            assert set(sample.labels) - {"le"} <= ALLOWED_LABELS, (f.name, sample.labels)
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        text = resp.read().decode()
    counters = {f.name for f in families if f.type == "counter"}
    for name in counters:
        assert re.search(rf"^{name}_total\{{", text, re.M), name


def test_docs_describe_every_metric(metrics: DialerMetrics) -> None:
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    for f in metrics.registry.collect():
        exposed = f.name + ("_total" if f.type == "counter" else "")
        assert f"`{exposed}`" in doc, f"docs/metrics.md does not document {exposed}"


@pytest.mark.parametrize("bad", ["+14155550100", "4155550100", "call 415-555-0100",
                                 "(415) 555 0100", "lead 0701234567"])
def test_phone_like_label_values_are_refused_without_echoing_them(
    metrics: DialerMetrics, bad: str
) -> None:
    with pytest.raises(MetricsLabelError) as e:
        metrics.set_dial_level(bad, 1.0)
    assert "phone number" in str(e.value)
    assert bad not in str(e.value)


@pytest.mark.parametrize("bad", ["", "Alice Smith", "a" * 65, "-x", "x/y", 'x"y'])
def test_non_identifier_label_values_are_refused(metrics: DialerMetrics, bad: str) -> None:
    with pytest.raises(MetricsLabelError, match="campaign"):
        metrics.set_dial_level(bad, 1.0)


@settings(max_examples=60, deadline=None)
@given(prefix=st.text(alphabet="abcxyz-_", max_size=5),
       digits=st.text(alphabet="0123456789", min_size=7, max_size=15),
       suffix=st.text(alphabet="abc_", max_size=5))
def test_any_run_of_seven_digits_is_refused(prefix: str, digits: str, suffix: str) -> None:
    m = DialerMetrics(CollectorRegistry())
    with pytest.raises(MetricsLabelError):
        m.add_campaign(f"c{prefix}{digits}{suffix}")


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9_\-]{0,20}", fullmatch=True).filter(
    lambda s: not re.search(r"\d{7}", s)))
def test_short_identifiers_are_accepted(name: str) -> None:
    m = DialerMetrics(CollectorRegistry())
    assert m.add_campaign(name) == name


def test_unknown_enum_values_are_refused_naming_the_label(metrics: DialerMetrics) -> None:
    with pytest.raises(MetricsLabelError, match="unknown result 'answered'"):
        metrics.attempt_finished(C, "answered")
    with pytest.raises(MetricsLabelError, match="unknown stage 'ended'"):
        metrics.set_in_flight(C, {AttemptStage.ENDED: 1})
    with pytest.raises(MetricsLabelError, match="unknown state 'busy'"):
        metrics.set_agents(C, {"busy": 1})
    with pytest.raises(MetricsLabelError, match="unknown reason 'lunch'"):
        metrics.held_back(C, "lunch")
    assert set(IN_FLIGHT_STAGES) == {s.value for s in AttemptStage} - {"ended"}


@pytest.mark.parametrize(("call", "match"), [
    (lambda m: m.attempt_finished(C, "busy", 99), "sip_code"),
    (lambda m: m.attempt_finished(C, "busy", 486, ring_s=-1.0), "ring_s"),
    (lambda m: m.attempt_finished(C, "connected", 200, talk_s=math.nan), "talk_s"),
    (lambda m: m.observe_answer_to_agent(C, math.inf), "seconds"),
    (lambda m: m.set_answer_rate(C, 1.5), "answer rate"),
    (lambda m: m.set_abandon(C, "rolling_30d", 0.01, 3.0), "abandon cap"),
    (lambda m: m.set_hopper(C, -1, 0), "hopper depth"),
    (lambda m: m.set_agents(C, {"ready": 1.5}), "agents in ready"),
    (lambda m: m.set_node("node-0", 4, 5), "exceeds capacity"),
    (lambda m: m.calls_lost(C, -2), "n must be >= 0"),
    (lambda m: m.set_dial_level(C, "fast"), "dial level must be a number"),
])
def test_bad_values_are_refused_naming_what_was_wrong(
    metrics: DialerMetrics, call, match: str
) -> None:
    with pytest.raises(MetricsValueError, match=match):
        call(metrics)


def test_refused_event_changes_nothing(served) -> None:
    m, server = served
    with pytest.raises(MetricsValueError):
        m.attempt_finished(C, "busy", 486, ring_s=-3.0)
    s = scrape(server)
    assert val(s, "dialer_attempts_total", campaign=C, result="busy") == 0
    assert val(s, "dialer_sip_final_responses_total", campaign=C, code="486") == 0


def test_two_instances_with_own_registries_serve_independently() -> None:
    a = DialerMetrics(CollectorRegistry(), campaigns=["a"])
    b = DialerMetrics(campaigns=["b"])  # default: a private registry, not the global one
    a.dnc_hit("a", 3)
    with a.start_http(0) as sa, b.start_http(0) as sb:
        assert sa.port != sb.port
        assert val(scrape(sa), "dialer_dnc_hits_total", campaign="a") == 3
        assert ("dialer_dnc_hits_total", frozenset({("campaign", "a")})) not in scrape(sb)


def test_close_releases_the_port_and_busy_port_is_a_clear_error(metrics: DialerMetrics) -> None:
    server = metrics.start_http(0, addr="127.0.0.1")
    port = server.port
    with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        metrics.start_http(port)
    server.close()
    server.close()  # idempotent
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    with pytest.raises(ValueError, match="metrics port"):
        metrics.start_http(70000)


def test_render_matches_the_scrape(served) -> None:
    m, server = served
    m.dnc_hit(C)
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        assert resp.read() == m.render()


def test_module_imports_nothing_into_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    DialerMetrics(campaigns=["x"])
    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("dialer_")]


@dataclass
class Node:
    """The attributes of sip.pool.NodeHandle that set_nodes reads."""

    index: int
    generation: int = 0
    capacity: int = 4
    in_use: int = 0
    alive: bool = True


def test_set_nodes_publishes_the_pool_and_counts_restarts_by_generation(served) -> None:
    m, server = served
    pool = [Node(0, in_use=3), Node(1, generation=1, in_use=1)]  # node 1 crashed once already
    m.set_nodes(pool)
    s = scrape(server)
    assert val(s, "dialer_node_calls_in_use", node="node-0") == 3
    assert val(s, "dialer_node_capacity_calls", node="node-1") == 4
    assert val(s, "dialer_node_restarts_total", node="node-0") == 0
    assert val(s, "dialer_node_restarts_total", node="node-1") == 1
    # node 0 dies: seen dead once, then its replacement (generation 1) reports in
    pool[0] = Node(0, in_use=0, capacity=0, alive=False)
    m.set_nodes(pool)
    s = scrape(server)
    assert val(s, "dialer_node_capacity_calls", node="node-0") == 0
    assert val(s, "dialer_node_restarts_total", node="node-0") == 0
    pool[0] = Node(0, generation=1)
    m.set_nodes(pool)
    m.set_nodes(pool)  # the same snapshot again counts nothing more
    # node 1 crashes twice between two snapshots
    pool[1] = Node(1, generation=3)
    m.set_nodes(pool)
    s = scrape(server)
    assert val(s, "dialer_node_restarts_total", node="node-0") == 1
    assert val(s, "dialer_node_restarts_total", node="node-1") == 3
    assert val(s, "dialer_node_capacity_calls", node="node-0") == 4
    with pytest.raises(MetricsValueError, match="node index"):
        m.set_nodes([Node(-1)])


def test_help_texts_say_what_the_runtime_sets(metrics: DialerMetrics) -> None:
    """dialer.runtime._publish_gauges sets dial level = calls in progress / working agents
    and answer rate = (live answers + machines) / dials of this run: the help says so."""
    helps = {f.name: f.documentation
             for f in text_string_to_metric_families(metrics.render().decode())}
    assert "per working agent" in helps["dialer_dial_level"]
    assert "calls in progress" in helps["dialer_dial_level"].lower()
    answer = helps["dialer_answer_rate"]
    assert "live answers plus answering machines" in answer and "dials" in answer
    assert "pacer" not in helps["dialer_dial_level"] + answer


def test_amd_decisions_are_timed_by_verdict(served) -> None:
    m, server = served
    m.observe_amd(C, AmdVerdict.HUMAN, 1.8)
    m.observe_amd(C, "machine", 4.6)
    s = scrape(server)
    assert val(s, "dialer_amd_decision_seconds_bucket", campaign=C, verdict="human",
               le="2.0") == 1
    assert val(s, "dialer_amd_decision_seconds_bucket", campaign=C, verdict="machine",
               le="4.0") == 0
    assert val(s, "dialer_amd_decision_seconds_count", campaign=C, verdict="machine") == 1
    assert val(s, "dialer_amd_decision_seconds_count", campaign=C, verdict="unknown") == 0
    with pytest.raises(MetricsLabelError, match="verdict"):
        m.observe_amd(C, "not_run", 1.0)
