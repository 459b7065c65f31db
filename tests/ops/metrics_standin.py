"""Stand-in metrics source for the ops tests when `dialer demo` is not available.

NOT the dialer: a small, seeded, time-compressed simulation of one predictive campaign that
feeds the real `dialer.metrics.DialerMetrics` and serves it with the real `start_http`, the
way the runtime will. It exists so the Prometheus/Grafana verification can run before the
demo command lands; tests/ops/test_prometheus_queries.py prefers the real demo whenever
`dialer demo --help` offers `--metrics-port`.

Command line mirrors the demo's:  python tests/ops/metrics_standin.py --minutes 0.5
--metrics-port 0  prints `METRICS_PORT=<port>` once serving, runs, then prints a summary line.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass

from common.vocabulary import AbandonWindow, AgentState, AttemptResult, AttemptStage
from dialer.metrics import DialerMetrics

CAMPAIGN = "standin-offer"
NODES = ("node-0", "node-1")
NODE_CAPACITY = 4  # the PyPI pjsua2 wheel's PJSUA_MAX_CALLS
TICK_S = 0.1
#: outcome mix of an outbound B2B list: (result, SIP final code, probability)
OUTCOMES: tuple[tuple[AttemptResult, int | None, float], ...] = (
    (AttemptResult.CONNECTED, 200, 0.30),  # live answer; may turn abandoned if no agent
    (AttemptResult.MACHINE, 200, 0.08),
    (AttemptResult.BUSY, 486, 0.10),
    (AttemptResult.NO_ANSWER, 487, 0.30),
    (AttemptResult.REJECTED, 603, 0.06),
    (AttemptResult.INVALID_NUMBER, 404, 0.06),
    (AttemptResult.FAILED, 503, 0.10),
)


@dataclass
class Call:
    stage: AttemptStage
    outcome: AttemptResult
    code: int | None
    ring_left: float
    ring_s: float
    talk_left: float = 0.0
    talk_s: float = 0.0
    agent: int | None = None
    node: str = NODES[0]


@dataclass
class Agent:
    state: AgentState = AgentState.READY
    busy_left: float = 0.0
    wrap_s: float = 0.0


def run(minutes: float, port: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    m = DialerMetrics(campaigns=[CAMPAIGN], nodes=NODES)
    for node in NODES:
        m.set_node(node, NODE_CAPACITY, 0)
    server = m.start_http(port)
    print(f"METRICS_PORT={server.port}", flush=True)

    agents = [Agent() for _ in range(4)]
    calls: list[Call] = []
    placed = connected = abandoned = 0
    live = 0
    leads_callable = 400
    deadline = time.monotonic() + minutes * 60
    tick = 0
    try:
        while time.monotonic() < deadline:
            tick += 1
            # --- agents: talk -> wrap-up -> ready; now and then a short break
            for a in agents:
                if a.state in (AgentState.TALKING, AgentState.WRAP_UP, AgentState.PAUSED):
                    a.busy_left -= TICK_S
                    if a.busy_left <= 0 and a.state is AgentState.WRAP_UP:
                        m.observe_wrapup(CAMPAIGN, a.wrap_s)
                        a.state = AgentState.READY
                    elif a.busy_left <= 0 and a.state is AgentState.PAUSED:
                        a.state = AgentState.READY
                elif a.state is AgentState.READY and rng.random() < 0.002:
                    a.state, a.busy_left = AgentState.PAUSED, rng.uniform(2, 5)
            # --- calls: ring, then the outcome; connected calls need a ready agent
            for c in list(calls):
                if c.stage in (AttemptStage.DIALING, AttemptStage.RINGING):
                    c.stage = AttemptStage.RINGING
                    c.ring_left -= TICK_S
                    if c.ring_left > 0:
                        continue
                    if c.outcome is AttemptResult.CONNECTED:
                        live += 1
                        free = [i for i, a in enumerate(agents) if a.state is AgentState.READY]
                        if not free:
                            abandoned += 1
                            m.attempt_finished(CAMPAIGN, AttemptResult.ABANDONED, 200, c.ring_s)
                            calls.remove(c)
                            continue
                        c.agent = free[0]
                        c.stage = AttemptStage.BRIDGED
                        c.talk_s = c.talk_left = rng.lognormvariate(1.2, 0.5)
                        agents[c.agent].state = AgentState.TALKING
                        m.observe_answer_to_agent(CAMPAIGN, rng.lognormvariate(-1.9, 0.4))
                        connected += 1
                    else:
                        ring = c.ring_s if c.code in (200, 487, 603) else None
                        m.attempt_finished(CAMPAIGN, c.outcome, c.code, ring)
                        calls.remove(c)
                elif c.stage is AttemptStage.BRIDGED:
                    c.talk_left -= TICK_S
                    if c.talk_left <= 0:
                        m.attempt_finished(CAMPAIGN, c.outcome, c.code, c.ring_s, c.talk_s)
                        a = agents[c.agent or 0]
                        a.state, a.wrap_s = AgentState.WRAP_UP, rng.uniform(0.5, 2.0)
                        a.busy_left = a.wrap_s
                        calls.remove(c)
            # --- pacer: dial level from the recent answer rate, bounded by node capacity
            answer_rate = 0.3 if placed < 10 else min(1.0, live / placed)
            ready = sum(a.state is AgentState.READY for a in agents)
            level = min(3.0, 1.0 / max(answer_rate, 0.2))
            want = int(ready * level) - sum(
                c.stage in (AttemptStage.DIALING, AttemptStage.RINGING) for c in calls
            )
            room = NODE_CAPACITY * len(NODES) - len(calls)
            for _ in range(max(0, min(want, room, 2))):
                outcome, code, _ = rng.choices(OUTCOMES, weights=[o[2] for o in OUTCOMES])[0]
                ring = rng.uniform(0.3, 1.5) if code != 487 else 2.0
                # the pool's rule: the node with the most free capacity takes the call
                node = min(NODES, key=lambda n: sum(c.node == n for c in calls))
                calls.append(Call(AttemptStage.DIALING, outcome, code, ring, ring * 10,
                                  node=node))
                placed += 1
                leads_callable -= 1
            if tick % 20 == 0:
                m.held_back(CAMPAIGN, rng.choice(["callee_window", "company_hours"]))
            if tick % 37 == 0:
                m.dnc_hit(CAMPAIGN)
            # --- snapshots, as the runtime publishes them each tick
            stages: dict[AttemptStage | str, int] = {}
            for c in calls:
                stages[c.stage] = stages.get(c.stage, 0) + 1
            m.set_in_flight(CAMPAIGN, stages)
            states: dict[AgentState | str, int] = {}
            for a in agents:
                states[a.state] = states.get(a.state, 0) + 1
            m.set_agents(CAMPAIGN, states)
            m.set_dial_level(CAMPAIGN, level)
            m.set_answer_rate(CAMPAIGN, answer_rate)
            m.set_abandon(CAMPAIGN, AbandonWindow.ROLLING_30D,
                          abandoned / live if live else 0.0, 0.03)
            m.set_hopper(CAMPAIGN, min(20, max(leads_callable, 0)), max(leads_callable, 0))
            for node in NODES:
                m.set_node(node, NODE_CAPACITY, sum(c.node == node for c in calls))
            time.sleep(TICK_S)
    finally:
        server.close()
    rate = abandoned / live if live else 0.0
    print(f"standin: placed={placed} connected={connected} abandoned={abandoned} "
          f"abandon_rate={rate:.4f}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=0.5)
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.minutes <= 0:
        p.error("--minutes must be > 0")
    return run(args.minutes, args.metrics_port, args.seed)


if __name__ == "__main__":
    sys.exit(main())
