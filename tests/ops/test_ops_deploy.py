"""deploy/docker-compose.yml and deploy/Dockerfile.

No Docker engine runs on the test machines, so the stack is never started here. When a Compose
implementation is installed (`docker compose` v2 or Debian's `docker-compose`), its `config`
command validates the file against the Compose schema; the structural checks below run
everywhere and catch what `config` does not: mounted files that do not exist in the checkout,
a Prometheus/Grafana wiring that does not match deploy/'s own configs, a root container.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_promql import DATASOURCES_FILE, DEPLOY, REPO

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICES = {"postgres", "mosquitto", "prometheus", "grafana", "dialer"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "no services map"
    return doc


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        res = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30,
                             check=False)
        if res.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates_when_a_compose_cli_exists() -> None:
    cli = _compose_cli()
    if cli is None:
        if os.environ.get("CI"):  # scripts/setup installs Debian's docker-compose
            raise AssertionError("docker-compose is missing: scripts/setup installs it")
        pytest.skip("no `docker compose` / `docker-compose` here; structural checks below apply")
    res = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                         text=True, timeout=60, cwd=DEPLOY, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_has_the_stack_with_valid_references(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        assert ("image" in svc) or ("build" in svc), f"{name}: no image or build"
        assert "healthcheck" in svc, f"{name}: no healthcheck"
        test = svc["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source, target, *mode = vol.split(":")
            assert target.startswith("/"), f"{name}: bad mount target in {vol!r}"
            if source.startswith("."):
                path = (DEPLOY / source).resolve()
                assert path.exists(), f"{name}: mounted {source} does not exist ({path})"
                assert mode == ["ro"], f"{name}: config mount {vol!r} should be read-only"
            else:
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
        for port in svc.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+(-\d+)?:\d+(-\d+)?(/udp|/tcp)?", port), port


def test_compose_wiring_matches_deploy_configs(compose: dict[str, Any]) -> None:
    s = compose["services"]
    # Prometheus scrapes the dialer's metrics port by service name
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (dialer_job,) = [j for j in prom_cfg["scrape_configs"] if j["job_name"] == "dialer"]
    (target,) = dialer_job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "dialer"
    env = s["dialer"]["environment"]
    assert env["DIALER_METRICS__PORT"] == port
    assert env["DIALER_METRICS__HOST"] == "0.0.0.0"
    assert port in " ".join(s["dialer"]["healthcheck"]["test"])
    # the dialer reaches PostgreSQL and Mosquitto by service name, as user "dialer" (ACL)
    assert "@postgres:5432/" in env["DIALER_DATABASE__URL"]
    assert env["DIALER_MQTT__URL"].startswith("mqtt://dialer:")
    assert "@mosquitto:1883" in env["DIALER_MQTT__URL"]
    # Grafana's provisioned data source points at the prometheus service
    (ds,) = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    assert ds["url"] == "http://prometheus:9090"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in s["grafana"]["volumes"]}
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dialer.yml").read_text())
    dash_path = provider["providers"][0]["options"]["path"]
    assert mounts.get(dash_path) == "./grafana/dashboards", (dash_path, mounts)
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning"
    # Prometheus loads the deploy dir whose rule_files are relative to prometheus.yml
    assert any(v.startswith("./prometheus:/etc/prometheus") for v in s["prometheus"]["volumes"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in s["prometheus"]["command"]
    # the dialer's config mount is the lead's example config
    assert any(v.startswith("./dialer.example.toml:") for v in s["dialer"]["volumes"])
    assert s["dialer"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / s["dialer"]["build"]["context"] / "pyproject.toml").exists()


def test_dockerfile_installs_from_pyproject_as_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [ln.split(None, 1) for ln in text.splitlines()
                    if ln.strip() and not ln.lstrip().startswith("#") and not ln.startswith(" ")]
    keywords = [i[0] for i in instructions]
    assert keywords.count("FROM") == 2, "expected a build stage and a runtime stage"
    users = [i[1].strip() for i in instructions if i[0] == "USER"]
    assert users and users[-1] not in ("root", "0"), "the runtime must not run as root"
    assert "HEALTHCHECK" in keywords
    assert "COPY pyproject.toml" in text and "pip install" in text
    # every path the Dockerfile copies exists in the checkout (build context = repo root)
    for kw, rest in instructions:
        if kw == "COPY" and "--from=" not in rest:
            *sources, _dest = [a for a in rest.split() if not a.startswith("--")]
            for src in sources:
                assert (REPO / src).exists(), f"COPY source {src} missing from the repository"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for src in ("pyproject.toml", "dialer/", "sip/", "scheduling/", "db/"):
        assert f"!{src}" in ignore, f"{src} excluded from the build context"


def test_example_passwords_match_docs_and_acl_users_exist() -> None:
    users = {ln.split(":", 1)[0] for ln in (DEPLOY / "mosquitto" / "passwd").read_text()
             .splitlines() if ln and not ln.startswith("#")}
    acl_users = set(re.findall(r"^user (\S+)$", (DEPLOY / "mosquitto" / "acl").read_text(), re.M))
    assert acl_users <= users, f"ACL names users without a password entry: {acl_users - users}"
    assert "dialer" in users
    ops = Path(REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "mosquitto_passwd" in ops, "docs/operations.md must say how to replace the passwords"


def test_env_example_sets_every_variable_the_compose_file_uses() -> None:
    used = set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", COMPOSE.read_text()))
    example = DEPLOY / ".env.example"
    given = {ln.split("=", 1)[0] for ln in example.read_text().splitlines()
             if ln and not ln.startswith("#")}
    assert used == given, f"compose uses {sorted(used)}, .env.example sets {sorted(given)}"


def test_mosquitto_message_size_limit_fits_the_largest_screen_pop() -> None:
    """deploy/mosquitto caps payloads (message_size_limit). A screen pop is the dialer's
    largest message: with every text at its schema maximum (custom field values, which have
    none, at 200 characters), 3-byte UTF-8 characters and the 20 history entries the store
    sends (db/store.py lead_history), it must still pass, or the broker would drop it
    silently. Agent commands are refused above 64 KiB by the dialer itself."""
    from datetime import UTC, datetime

    from common.vocabulary import AttemptResult, LeadStatus
    from dialer.bus.messages import MAX_PAYLOAD_BYTES, ScreenPopEvt

    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    limit = int(re.findall(r"^message_size_limit (\d+)$", conf, re.M)[0])
    ch, now, big = "語", datetime.now(UTC), 2**62
    pop = ScreenPopEvt.model_validate({
        "id": "m" * 64, "ts": now, "attempt_id": big,
        "lead": {"id": big, "name": ch * 200, "phone": "+14155550100", "company": ch * 200,
                 "custom_fields": {f"k{i:063d}": ch * 200 for i in range(100)},
                 "status": next(iter(LeadStatus))},
        "history": [{"attempt_id": big, "at": now, "result": AttemptResult.CONNECTED,
                     "disposition": "d" * 64, "notes": ch * 4000, "agent": "a" * 64}
                    for _ in range(20)],
        "script": ch * 20000,
        "dispositions": [{"code": "d" * 64, "label": ch * 100, "needs_callback": False,
                          "final": True} for _ in range(200)],
    })
    size = len(pop.model_dump_json().encode())
    assert MAX_PAYLOAD_BYTES < size < limit, (size, limit)
    assert limit < 1024 * 1024  # a megabyte payload is refused
