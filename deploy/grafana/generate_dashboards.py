"""Write the four provisioned Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed and are what Grafana loads; this script is their source, so a
panel is changed here and the files regenerated:

    .venv/bin/python deploy/grafana/generate_dashboards.py

tests/ops checks that the committed files equal this script's output, and evaluates every
PromQL expression in them against a real Prometheus scraping a dialer run.

Conventions: every panel and target uses the provisioned Prometheus data source (uid
`DATASOURCE_UID`, see provisioning/datasources/prometheus.yml); every campaign-scoped query
filters with `campaign=~"$campaign"` (a multi-value variable with an "All" option); rates use
`$__rate_interval` so they stay correct whatever the scrape interval.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASOURCE_UID = "dialer-prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
OUT_DIR = Path(__file__).resolve().parent / "dashboards"

C = 'campaign=~"$campaign"'


@dataclass(frozen=True)
class Q:
    """One PromQL target: expression and legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Q, ...]
    kind: str = "timeseries"  # timeseries | stat | gauge
    unit: str = "short"
    width: int = 12
    height: int = 8
    stacked: bool = False
    #: absolute thresholds (value, colour) for stat/gauge panels and threshold lines
    thresholds: tuple[tuple[float, str], ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def _campaign_variable() -> dict[str, Any]:
    return {
        "name": "campaign",
        "label": "Campaign",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": "label_values(dialer_attempts_total, campaign)",
        "query": {
            "query": "label_values(dialer_attempts_total, campaign)",
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,  # on time range change: new campaigns appear without a reload
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
    }


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "palette-classic" if panel.kind == "timeseries" else "thresholds"},
    }
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 25 if panel.stacked else 5,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
        }
    overrides: list[dict[str, Any]] = []
    if any(q.legend.endswith(" cap") for q in panel.queries):
        # caps draw as dashed lines so rate and cap of one window read as a pair
        overrides.append({
            "matcher": {"id": "byRegexp", "options": ".* cap$"},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
        })
    options: dict[str, Any]
    if panel.kind == "timeseries":
        options = {
            "legend": {"displayMode": "table", "placement": "bottom",
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "auto",
            "textMode": "auto",
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
        }
    targets = [
        {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + i),
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "range": True,
            "instant": False,
            "editorMode": "code",
        }
        for i, q in enumerate(panel.queries)
    ]
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options,
        "targets": targets,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    """Lay `panels` out left to right, wrapping at Grafana's 24-column grid."""
    out: list[dict[str, Any]] = []
    x = y = row_h = 0
    for pid, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(_panel_json(panel, pid, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["dialer"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,  # shared crosshair: line up a spike across panels
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "templating": {"list": [_campaign_variable()]},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["dialer"], "asDropdown": True, "title": "Dialer",
             "includeVars": True, "keepTime": True}
        ],
        "panels": out,
    }


def _quantile(metric: str, q: float, sel: str = C) -> str:
    return (
        f"histogram_quantile({q}, sum by (le) "
        f"(rate({metric}_bucket{{{sel}}}[$__rate_interval])))"
    )


LOGGED_IN = 'state=~"ready|reserved|talking|wrap_up|paused"'
WORKING = 'state=~"reserved|talking|wrap_up"'
AVAILABLE = 'state=~"ready|reserved|talking|wrap_up"'


def campaigns() -> dict[str, Any]:
    return dashboard("dialer-campaigns", "Dialer / Campaigns",
                     "Campaign progress: attempts, answer and abandon rates, pacing, leads.", [
        Panel("Attempts per minute by result",
              "Finished attempts per minute, by final result (dialer_attempts_total).",
              (Q(f"sum by (result) (rate(dialer_attempts_total{{{C}}}[$__rate_interval])) * 60",
                 "{{result}}"),),
              unit="short", stacked=True, width=16),
        Panel("Attempts in range",
              "Attempts finished in the selected time range.",
              (Q(f"sum(increase(dialer_attempts_total{{{C}}}[$__range]))", "attempts"),),
              kind="stat", width=4),
        Panel("Live answers in range",
              "Attempts answered by a person (connected + abandoned) in the time range.",
              (Q(f'sum(increase(dialer_attempts_total{{{C},result=~"connected|abandoned"}}'
                 f"[$__range]))", "live"),),
              kind="stat", width=4),
        Panel("Answer rate",
              "Share of attempts answered by a live person, as the pacer measures it "
              "(dialer_answer_rate). The pacer dials more lines when it falls.",
              (Q(f"max by (campaign) (dialer_answer_rate{{{C}}})", "{{campaign}}"),),
              unit="percentunit", minimum=0, maximum=1),
        Panel("Abandon rate against cap, per window",
              "Abandoned share of live answers over each compliance window (solid) and its "
              "cap (dashed line at the same colour). Must stay below the cap.",
              (Q(f"max by (campaign, window) (dialer_abandon_rate{{{C}}})",
                 "{{campaign}} {{window}} rate"),
               Q(f"max by (campaign, window) (dialer_abandon_rate_cap{{{C}}})",
                 "{{campaign}} {{window}} cap")),
              unit="percentunit", minimum=0),
        Panel("Dial level",
              "Lines dialed per available agent, as set by the pacer (1.0 = progressive).",
              (Q(f"max by (campaign) (dialer_dial_level{{{C}}})", "{{campaign}}"),),
              unit="short", minimum=0),
        Panel("Calls in flight by stage",
              "Calls in progress: dialing, ringing, answered (waiting for AMD/agent), "
              "bridged to an agent, playing the abandon message.",
              (Q(f"sum by (stage) (dialer_calls_in_flight{{{C}}})", "{{stage}}"),),
              stacked=True),
        Panel("Callable leads and hopper depth",
              "Leads callable now under every rule, and leads claimed into the hopper. "
              "Callable at 0 means the campaign has run out of work for now.",
              (Q(f"sum(dialer_callable_leads{{{C}}})", "callable"),
               Q(f"sum(dialer_hopper_depth{{{C}}})", "hopper")),
              unit="short", minimum=0, width=24),
        # the CRM's outcome webhooks are per dialer, not per campaign (no campaign label)
        Panel("CRM webhook deliveries per minute",
              "Webhook POSTs to the CRM per minute by result (all campaigns): delivered, "
              "failed (retried later), dead (given up after the retry horizon).",
              (Q("sum by (result) (rate(dialer_webhook_deliveries_total[$__rate_interval]))"
                 " * 60", "{{result}}"),),
              stacked=True),
        Panel("CRM webhook backlog",
              "Deliveries waiting, and the age of the oldest one (all campaigns). A growing "
              "age means a receiver is down: see the DialerWebhookBacklogOld alert.",
              (Q("sum(dialer_webhook_pending)", "pending"),
               Q("max(dialer_webhook_oldest_pending_seconds)", "oldest pending (s)"),
               Q("sum(dialer_webhook_dead_letters)", "dead letters")),
              unit="short", minimum=0),
    ])


def agents() -> dict[str, Any]:
    return dashboard("dialer-agents", "Dialer / Agents",
                     "Agent states, occupancy, talk and wrap-up times, productivity.", [
        Panel("Agents by state",
              "Agents in each state over time (dialer_agents).",
              (Q(f"sum by (state) (dialer_agents{{{C}}})", "{{state}}"),),
              stacked=True, width=16),
        Panel("Agents ready now",
              "Agents waiting for a call.",
              (Q(f'sum(dialer_agents{{{C},state="ready"}})', "ready"),),
              kind="stat", width=8),
        Panel("Occupancy",
              "Share of available agents (ready, reserved, talking, wrap-up) busy with a call "
              "(reserved, talking, wrap-up). 0 while nobody is available.",
              (Q(f"sum(dialer_agents{{{C},{WORKING}}}) / "
                 f"clamp_min(sum(dialer_agents{{{C},{AVAILABLE}}}), 1)", "occupancy"),),
              unit="percentunit", minimum=0, maximum=1,
              thresholds=((0.9, "orange"),)),
        Panel("Calls per agent hour",
              "Calls connected to an agent per hour, per logged-in agent.",
              (Q(f'sum(rate(dialer_attempts_total{{{C},result="connected"}}[$__rate_interval]))'
                 f" * 3600 / clamp_min(sum(dialer_agents{{{C},{LOGGED_IN}}}), 1)",
                 "calls / agent hour"),),
              unit="short", minimum=0),
        Panel("Talk time",
              "Talk time of connected calls: median and 90th percentile.",
              (Q(_quantile("dialer_talk_seconds", 0.5), "p50"),
               Q(_quantile("dialer_talk_seconds", 0.9), "p90")),
              unit="s", minimum=0),
        Panel("Wrap-up time",
              "Time from call end to the agent's disposition: median and 90th percentile.",
              (Q(_quantile("dialer_wrapup_seconds", 0.5), "p50"),
               Q(_quantile("dialer_wrapup_seconds", 0.9), "p90")),
              unit="s", minimum=0),
    ])


def telephony() -> dict[str, Any]:
    return dashboard("dialer-telephony", "Dialer / Telephony",
                     "Answer-to-agent latency, ring time, SIP codes, SIP node pool.", [
        Panel("Answer-to-agent latency",
              "Time from a live answer to the bridge with an agent: p50 and p99. Above the "
              "abandon grace (2 s) a call counts as abandoned.",
              (Q(_quantile("dialer_answer_to_agent_seconds", 0.5), "p50"),
               Q(_quantile("dialer_answer_to_agent_seconds", 0.99), "p99")),
              unit="s", minimum=0, thresholds=((2.0, "red"),)),
        Panel("Ring time",
              "Ring time (first 18x to answer or give-up): p50 and p90.",
              (Q(_quantile("dialer_ring_seconds", 0.5), "p50"),
               Q(_quantile("dialer_ring_seconds", 0.9), "p90")),
              unit="s", minimum=0),
        Panel("SIP final codes per minute",
              "Final SIP responses per minute by code (200 answered, 486 busy, 487 cancelled "
              "after the ring timeout, 480/408 unavailable, 404 unknown number, 5xx failures).",
              (Q(f"sum by (code) (rate(dialer_sip_final_responses_total{{{C}}}"
                 f"[$__rate_interval])) * 60", "{{code}}"),),
              stacked=True),
        Panel("SIP node capacity and use",
              "Calls each SIP node holds against its measured capacity (all campaigns).",
              (Q("sum by (node) (dialer_node_calls_in_use)", "{{node}} in use"),
               Q("sum(dialer_node_capacity_calls)", "pool capacity")),
              unit="short", minimum=0),
        Panel("Calls lost to node failures",
              "Calls whose SIP node died during the time range (closed as 'lost').",
              (Q(f"sum(increase(dialer_calls_lost_total{{{C}}}[$__range]))", "lost"),),
              kind="stat", width=8, thresholds=((1, "red"),)),
        Panel("SIP node restarts",
              "Node processes restarted after a crash in the time range, by node.",
              (Q("sum by (node) (increase(dialer_node_restarts_total[$__range]))", "{{node}}"),),
              kind="stat", width=8, thresholds=((1, "red"),)),
        Panel("Failed attempts share",
              "Share of attempts ending 'failed' (5xx, timeouts, transport errors).",
              (Q(f'sum(rate(dialer_attempts_total{{{C},result="failed"}}[$__rate_interval])) / '
                 f"clamp_min(sum(rate(dialer_attempts_total{{{C}}}[$__rate_interval])), 1e-9)",
                 "failed"),),
              kind="stat", unit="percentunit", width=8, thresholds=((0.2, "red"),)),
    ])


def compliance() -> dict[str, Any]:
    return dashboard("dialer-compliance", "Dialer / Compliance",
                     "Abandon rate against its cap, calls held back by calling rules, DNC.", [
        Panel("Abandon rate against cap",
              "Abandoned share of live answers per compliance window, and the cap. The "
              "DialerAbandonRateNearCap alert fires above 80 % of the cap.",
              (Q(f"max by (campaign, window) (dialer_abandon_rate{{{C}}})",
                 "{{campaign}} {{window}} rate"),
               Q(f"max by (campaign, window) (dialer_abandon_rate_cap{{{C}}})",
                 "{{campaign}} {{window}} cap")),
              unit="percentunit", minimum=0, width=16),
        Panel("Abandon rate as share of cap",
              "Measured abandon rate divided by its cap (100 % = at the cap).",
              (Q(f"max by (campaign, window) (dialer_abandon_rate{{{C}}} / "
                 f"dialer_abandon_rate_cap{{{C}}})", "{{campaign}} {{window}}"),),
              kind="gauge", unit="percentunit", minimum=0, maximum=1, width=8,
              thresholds=((0.8, "orange"), (1.0, "red"))),
        Panel("Calls held back by calling rules",
              "Due leads not dialed because a rule forbade it now, per minute by rule: the "
              "callee's legal window, the company's hours (incl. lunch and holidays), the "
              "72 h abandon lock-out, attempt caps, retry delays, refusal cool-off.",
              (Q(f"sum by (reason) (rate(dialer_calls_held_back_total{{{C}}}"
                 f"[$__rate_interval])) * 60", "{{reason}}"),),
              stacked=True),
        Panel("DNC hits per minute",
              "Leads stopped because their number is on a do-not-call list.",
              (Q(f"sum(rate(dialer_dnc_hits_total{{{C}}}[$__rate_interval])) * 60", "DNC hits"),),
              minimum=0),
        Panel("Abandoned calls in range",
              "Live answers with no agent within the grace time (they heard the "
              "identification message).",
              (Q(f'sum(increase(dialer_attempts_total{{{C},result="abandoned"}}[$__range]))',
                 "abandoned"),),
              kind="stat", width=8),
        Panel("Held back in range",
              "Due leads held back by calling windows and company hours in the time range.",
              (Q(f'sum(increase(dialer_calls_held_back_total{{{C},'
                 f'reason=~"callee_window|company_hours"}}[$__range]))', "held back"),),
              kind="stat", width=8),
        Panel("DNC hits in range",
              "Do-not-call matches in the time range.",
              (Q(f"sum(increase(dialer_dnc_hits_total{{{C}}}[$__range]))", "DNC"),),
              kind="stat", width=8),
    ])


DASHBOARDS = {
    "campaigns.json": campaigns,
    "agents.json": agents,
    "telephony.json": telephony,
    "compliance.json": compliance,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
