"""Issue 7 verification: deploy/'s Prometheus config, alert rules and Grafana dashboards
against a real Prometheus (Debian's `prometheus`) scraping a real metrics endpoint.

The metrics source is a short `dialer demo --metrics-port P --no-live` run when the installed
`dialer` offers it; otherwise the stand-in tests/ops/metrics_standin.py (real DialerMetrics and
/metrics server, simulated calls). `OPS_METRICS_SOURCE=demo|standin` forces one; the source
used is printed in the test output.

Every PromQL expression is read from the dashboard JSON and the rule YAML files: nothing here
copies a query. Dashboard queries must return a non-empty vector; alert expressions must
evaluate without error and every signal they compare must return a non-empty vector (see
ops_promql.signals for why the alert itself may rightly be empty).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_promql import (
    DATASOURCES_FILE,
    DEPLOY,
    REPO,
    RULES_DIR,
    dashboard_files,
    dashboard_queries,
    grafana_regex_value,
    grafana_substitute,
    iter_panels,
    rule_exprs,
    rule_files,
    signals,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
STANDIN = Path(__file__).with_name("metrics_standin.py")

MIN_SCRAPES = 8  # successful scrapes of the dialer before queries are evaluated
SOURCE_START_TIMEOUT_S = 90.0
DATA_TIMEOUT_S = 60.0
SOURCE_END_TIMEOUT_S = 120.0  # the run's own length plus shutdown
#: the last line of a run (issue 6 for the demo; the stand-in prints the same shape)
SUMMARY_RE = re.compile(r"^(demo|standin): placed=(\d+) connected=(\d+) abandoned=(\d+) "
                        r"abandon_rate=\S+", re.M)
#: what Grafana would put in for its built-in variables on a "last 5 minutes" view of a 1 s
#: scrape interval ($__rate_interval = max(4 x scrape, $__interval + scrape)).
GRAFANA_BUILTINS = {"__rate_interval": "30s", "__interval": "2s", "__range": "5m",
                    "__range_s": "300", "__interval_ms": "2000"}

pytestmark = pytest.mark.skipif(
    not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()) and not os.environ.get("CI"),
    reason="Debian prometheus (prometheus, promtool) not installed",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _run(cmd: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    # a wide, plain terminal so rich/typer help never wraps an option name
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


# ----------------------------------------------------------------------------- metrics source
@dataclass
class MetricsSource:
    kind: str  # "demo" | "standin"
    port: int
    proc: subprocess.Popen[str]
    log: Path

    def wait_end(self) -> int:
        try:
            return self.proc.wait(timeout=SOURCE_END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.kind} still running {SOURCE_END_TIMEOUT_S:.0f}s after the "
                        f"test finished with it:\n{self.log.read_text()[-2000:]}")


def _dialer_exe() -> Path:
    return Path(sys.executable).with_name("dialer")


def _demo_minutes_arg() -> str | None:
    """The --minutes value to pass if `dialer demo` has the options this test needs."""
    exe = _dialer_exe()
    if not exe.exists():
        return None
    try:
        res = _run([str(exe), "demo", "--help"], timeout=60)
    except subprocess.TimeoutExpired:
        return None
    text = res.stdout + res.stderr
    if res.returncode != 0 or "--metrics-port" not in text or "--no-live" not in text:
        return None
    return "1"


@pytest.fixture(scope="module")
def metrics_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsSource]:
    work = tmp_path_factory.mktemp("metrics-source")
    forced = os.environ.get("OPS_METRICS_SOURCE", "")
    minutes = None if forced == "standin" else _demo_minutes_arg()
    if forced == "demo" and minutes is None:
        pytest.fail("OPS_METRICS_SOURCE=demo, but `dialer demo --help` "
                    "offers no --metrics-port / --no-live")
    port = _free_port()
    if minutes is not None:
        kind = "demo"
        cmd = [str(_dialer_exe()), "demo", "--minutes", minutes, "--metrics-port", str(port),
               "--no-live", "--web-port", "0"]
    else:
        kind = "standin"
        cmd = [sys.executable, str(STANDIN), "--minutes", "0.5", "--metrics-port", str(port)]
    log = work / f"{kind}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env=env)
    print(f"\nmetrics source: {kind} ({' '.join(cmd)})")
    src = MetricsSource(kind, port, proc, log)
    try:
        deadline = time.monotonic() + SOURCE_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{kind} exited with {proc.returncode} before serving /metrics:\n"
                            f"{log.read_text()[-3000:]}")
            try:
                _get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"{kind} did not serve /metrics on port {port} within "
                                f"{SOURCE_START_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield src
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        print(f"metrics source {kind} output tail:\n{log.read_text()[-600:]}")


# ----------------------------------------------------------------------------- prometheus
@dataclass
class Prom:
    url: str
    eval_time: float
    campaigns: list[str]
    source: MetricsSource

    def query(self, expr: str) -> dict[str, Any]:
        qs = urllib.parse.urlencode({"query": expr, "time": f"{self.eval_time:.3f}"})
        try:
            body = _get(f"{self.url}/api/v1/query?{qs}", timeout=10)
        except urllib.error.HTTPError as e:  # 400 = bad PromQL: keep Prometheus's message
            body = e.read()
        return json.loads(body)


def _test_config(metrics_port: int, prom_port: int) -> dict[str, Any]:
    """deploy/'s prometheus.yml with targets, intervals and rule paths made local."""
    cfg = yaml.safe_load(PROM_CONFIG.read_text(encoding="utf-8"))
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    # rule_files are relative to the config file; the copy lives elsewhere
    cfg["rule_files"] = [str(PROM_CONFIG.parent / p) for p in cfg["rule_files"]]
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert "dialer" in jobs, "deploy/prometheus/prometheus.yml has no job_name: dialer"
    jobs["dialer"]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    if "prometheus" in jobs:
        jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prom_port}"]}]
    return cfg


def _instant(url: str, expr: str) -> list[dict[str, Any]]:
    body = json.loads(_get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def prom(metrics_source: MetricsSource, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Prom]:
    work = tmp_path_factory.mktemp("prometheus")
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(_test_config(metrics_source.port, port)), encoding="utf-8")
    check = _run([PROMTOOL, "check", "config", str(config)])
    assert check.returncode == 0, f"promtool check config (copy):\n{check.stdout}{check.stderr}"
    log = work / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()}")
            try:
                _get(f"{url}/-/ready", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"prometheus not ready in 30s:\n{log.read_text()}")
                time.sleep(0.3)
        # Wait for enough scrapes with attempts in them (the source is dialing).
        deadline = time.monotonic() + DATA_TIMEOUT_S
        need = (f'count_over_time(up{{job="dialer"}}[5m]) >= {MIN_SCRAPES} '
                f'and on() sum(dialer_attempts_total) > 0')
        while not _instant(url, need):
            if metrics_source.proc.poll() is not None:
                pytest.fail(f"{metrics_source.kind} ended before Prometheus had "
                            f"{MIN_SCRAPES} scrapes with attempts:\n"
                            f"{metrics_source.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {MIN_SCRAPES} scrapes with attempts in {DATA_TIMEOUT_S:.0f}s; "
                            f"targets: {_get(f'{url}/api/v1/targets')[:2000]!r}")
            time.sleep(1)
        # Evaluate everything at the last good scrape, so the source may end meanwhile.
        (last,) = _instant(url, 'timestamp(up{job="dialer"} == 1)')
        eval_time = float(last["value"][1])
        campaigns = sorted({s["metric"]["campaign"]
                            for s in _instant(url, "dialer_attempts_total")})
        assert campaigns, "no campaign label on dialer_attempts_total"
        yield Prom(url, eval_time, campaigns, metrics_source)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ----------------------------------------------------------------------------- static checks
def test_promtool_check_rules() -> None:
    files = rule_files()
    assert files, f"no rule files in {RULES_DIR}"
    res = _run([PROMTOOL, "check", "rules", *map(str, files)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_check_deploy_config() -> None:
    """The file compose mounts is valid as is (its rule_files are relative to it)."""
    res = _run([PROMTOOL, "check", "config", str(PROM_CONFIG)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rule files? found", res.stdout + res.stderr), res.stdout


def test_promtool_alert_unit_tests() -> None:
    """deploy/prometheus/tests: each alert fires on its condition and not on healthy data."""
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"
    res = _run([PROMTOOL, "test", "rules", *map(str, RULE_TESTS)])
    assert res.returncode == 0, res.stdout + res.stderr
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", [])
                       if t.get("exp_alerts")}
    alerts = {r.name for r in rule_exprs()}
    assert alerts <= tested, f"alerts never shown to fire in a promtool test: {alerts - tested}"


def test_dashboards_match_generator() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import generate_dashboards
    finally:
        sys.path.pop(0)
    rendered = generate_dashboards.render_all()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in dashboard_files()}
    assert set(rendered) == set(on_disk), "dashboards dir differs from generate_dashboards.py"
    stale = [name for name, text in rendered.items() if on_disk[name] != text]
    assert not stale, (f"{stale} differ from generate_dashboards.py output: run "
                       f".venv/bin/python deploy/grafana/generate_dashboards.py")


def test_dashboards_use_provisioned_datasource_and_campaign_variable() -> None:
    provisioned = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    uids = {ds["uid"] for ds in provisioned if ds["type"] == "prometheus"}
    assert len(uids) == 1, provisioned
    (uid,) = uids
    titles = set()
    files = dashboard_files()
    assert {p.name for p in files} >= {"campaigns.json", "agents.json", "telephony.json",
                                        "compliance.json"}
    for path in files:
        dash = json.loads(path.read_text(encoding="utf-8"))
        titles.add(dash["title"])
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert "campaign" in variables, f"{path.name}: no $campaign variable"
        assert variables["campaign"]["datasource"]["uid"] == uid
        panels = list(iter_panels(dash["panels"]))
        assert panels, f"{path.name} has no panels"
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            where = f"{path.name} / {panel['title']!r}"
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert panel["targets"], f"{where}: no queries"
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == uid, where
                # node and webhook metrics are the dialer's, not a campaign's
                if not re.search(r"dialer_(node|webhook)_", t["expr"]):
                    assert 'campaign=~"$campaign"' in t["expr"], f"{where}: not filtered"
    assert len(titles) == len(files), "dashboard titles must be unique"


def test_signal_splitter() -> None:
    assert signals('up{job="dialer"} == 0') == ['up{job="dialer"}']
    assert signals("absent(up{job=\"x\"})") == ['up{job="x"}']
    assert signals('(sum by (c) (a{s="r"}) > 0) and on(c) (rate(b[5m]) / rate(c[5m])) > 0.2'
                   ) == ['sum by (c) (a{s="r"})', "rate(b[5m]) / rate(c[5m])"]
    assert signals('x{l=~"a|b>c"} > 0.8 * y') == ['x{l=~"a|b>c"}', "0.8 * y"]
    assert signals("max(rate_or_x)") == ["max(rate_or_x)"]


def test_grafana_regex_value_matches_the_campaign_literally() -> None:
    for name in ("spring-offer", "q1.2027", "a+b(c)|d"):
        escaped = grafana_regex_value(name)
        # what Prometheus's string-literal parsing leaves of it is a regex matching `name` only
        regex = escaped.replace("\\\\", "\\")
        assert re.fullmatch(regex, name)
        assert not re.fullmatch(regex, name + "x")


# ----------------------------------------------------------------------------- live checks
def _variables(campaign: str) -> dict[str, str]:
    return {**GRAFANA_BUILTINS, "campaign": grafana_regex_value(campaign)}


def test_every_dashboard_query_returns_data(prom: Prom) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    failures = []
    nan_only = []
    for campaign in [*prom.campaigns, ".*"]:
        variables = _variables(campaign) if campaign != ".*" else {
            **GRAFANA_BUILTINS, "campaign": ".*"}  # the "All" option
        for q in queries:
            expr = grafana_substitute(q.expr, variables)
            body = prom.query(expr)
            if body.get("status") != "success":
                failures.append(f"{q.where}: {body.get('error')} in {expr}")
            elif not body["data"]["result"]:
                failures.append(f"{q.where}: empty result for {expr}")
            elif all(s["value"][1] == "NaN" for s in body["data"]["result"]):
                nan_only.append(q.where)
    print(f"\n{len(queries)} dashboard queries x {len(prom.campaigns) + 1} campaign values "
          f"({prom.source.kind}); NaN-only (no events in the rate window): {sorted(set(nan_only))}")
    assert not failures, "\n".join(failures)


def test_every_alert_expression_evaluates_and_its_signals_have_data(prom: Prom) -> None:
    rules = rule_exprs()
    assert rules
    failures = []
    for rule in rules:
        body = prom.query(rule.expr)
        if body.get("status") != "success":
            failures.append(f"{rule.file}/{rule.name}: {body.get('error')}")
            continue
        parts = signals(rule.expr)
        if not parts:
            failures.append(f"{rule.file}/{rule.name}: no signal found in {rule.expr!r}")
        for part in parts:
            sub = prom.query(part)
            if sub.get("status") != "success" or not sub["data"]["result"]:
                failures.append(f"{rule.file}/{rule.name}: signal {part!r} returned "
                                f"{sub.get('error') or 'no series'}")
    assert not failures, "\n".join(failures)


def test_prometheus_loaded_every_rule_and_evaluates_it(prom: Prom) -> None:
    expected = {r.name for r in rule_exprs()}
    deadline = time.monotonic() + 15
    while True:
        groups = json.loads(_get(f"{prom.url}/api/v1/rules"))["data"]["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        evaluated = all(r.get("lastEvaluation", "").startswith("2") and
                        not r["lastEvaluation"].startswith("0001") for r in loaded.values())
        if (set(loaded) == expected and evaluated) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(loaded) == expected
    bad = {name: r.get("lastError") for name, r in loaded.items() if r["health"] != "ok"}
    assert not bad, bad
    assert evaluated, "Prometheus has not evaluated every rule yet"


def test_campaign_variable_query_lists_campaigns(prom: Prom) -> None:
    """The variable's label_values(dialer_attempts_total, campaign) has values to offer."""
    qs = urllib.parse.urlencode({"match[]": "dialer_attempts_total"})
    body = json.loads(_get(f"{prom.url}/api/v1/label/campaign/values?{qs}"))
    assert body["status"] == "success"
    assert set(prom.campaigns) <= set(body["data"])
    if prom.source.kind == "standin":
        assert body["data"] == ["standin-offer"]


def test_scrape_has_no_personal_data_in_labels(prom: Prom) -> None:
    """No label value of any dialer_ series looks like a phone number."""
    series = json.loads(_get(f"{prom.url}/api/v1/series?" + urllib.parse.urlencode(
        {"match[]": '{__name__=~"dialer_.+"}'})))["data"]
    assert series
    phone = re.compile(r"\d(?:[\s.\-()]*\d){6,}")
    allowed = {"__name__", "job", "instance", "campaign", "result", "state", "stage", "window",
               "code", "node", "reason", "verdict", "trunk", "to", "le", "role",
               "control", "outcome"}
    for s in series:
        assert set(s) <= allowed, s
        for k, v in s.items():
            if k not in ("instance", "le"):
                assert not phone.search(v), f"{k} looks like a phone number in {s['__name__']}"


def test_zz_metrics_source_ends_with_its_summary_line(prom: Prom) -> None:
    """Runs last (file order): the source finished its short run cleanly and its summary's
    attempt count is at least what Prometheus saw mid-run."""
    rc = prom.source.wait_end()
    out = prom.source.log.read_text()
    assert rc == 0, f"{prom.source.kind} exited {rc}:\n{out[-3000:]}"
    m = SUMMARY_RE.search(out)
    assert m, f"no summary line in {prom.source.kind} output:\n{out[-2000:]}"
    seen = prom.query("sum(dialer_attempts_total)")["data"]["result"]
    assert int(m.group(2)) >= float(seen[0]["value"][1]) > 0
