"""Configuration: one TOML file plus environment overrides, validated once at start.

Precedence (highest first): environment variables `DIALER_<SECTION>__<KEY>` (for example
`DIALER_DATABASE__URL=postgresql://...`), the TOML file given with `--config` (or
`$DIALER_CONFIG`), then the defaults below. Every key is documented in
deploy/dialer.example.toml. A bad value stops the program at start with the key, the value
given and the expected form (`ConfigError`); the value is left out when the key holds a
secret (`is_secret_key`), and `redact_secrets` hides secrets from anything printed.

Agent passwords: `password_hash = "$argon2id$..."` (dialer/passwords.py; print one with
`dialer agents hash-password`; `scrypt$...` hashes of older versions still work). A plain
`password` still works but is deprecated: loading
such a config logs a WARNING naming the key (never the password).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from common.vocabulary import (
    AbandonClockStart,
    AbandonWindow,
    DialMode,
    MachinePolicy,
    check_groups,
)
from dialer.config_secrets import (  # noqa: F401 (re-exported: the config API)
    _SECRET_MAPS,
    HIDDEN,
    is_secret_key,
    redact_all,
    redact_secrets,
    redact_url,
)
from dialer.passwords import check_password_hash

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration problem, worded for the person who edits the file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DialerSection(_Section):
    #: name of this dialer process: it owns the lead claims and attempts it makes
    id: str = Field(default="dialer-1", min_length=1, max_length=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: on SIGTERM, how long live calls may go on before they are hung up
    drain_deadline_s: float = Field(default=30.0, ge=0)
    #: on SIGTERM, after the calls: how long agents still in wrap-up may take to give their
    #: dispositions; what is still open then waits as "needs outcome"
    wrapup_deadline_s: float = Field(default=60.0, ge=0)
    #: where recordings, generated messages and reports go
    data_dir: Path = Path("var")


class ClusterSection(_Section):
    """Several `dialer run` instances on one database and one external broker
    (docs/cluster.md). Off: this instance is alone (the default)."""

    enabled: bool = False
    #: how often this instance renews its heartbeat and its agents' leases, and refreshes the
    #: other instances' abandon counts
    heartbeat_s: float = Field(default=1.0, gt=0, le=30)
    #: a heartbeat or agent lease not renewed for this long is dead: another instance takes
    #: over its agents and closes its open attempts as lost
    lease_ttl_s: float = Field(default=5.0, gt=0, le=300)


class DatabaseSection(_Section):
    url: str = "sqlite:///var/dialer.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("expected sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB")
        return v


class MqttSection(_Section):
    #: external broker, e.g. mqtt://dialer:secret@127.0.0.1:1883 ; empty = embedded broker
    url: str = ""
    embedded_host: str = "127.0.0.1"
    embedded_port: int = Field(default=1883, ge=0, le=65535)
    topic_prefix: str = "dialer"
    #: embedded broker only: supervisor logins and passwords (read-only: the supervisor stream)
    supervisors: dict[str, str] = {}


class MetricsSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class TrunkSection(_Section):
    #: where INVITEs go: sip:provider.example.com or sip:127.0.0.1:5060
    uri: str
    username: str = ""
    password: str = ""
    realm: str = "*"
    #: send REGISTER for this account (most trunks authenticate INVITEs without it)
    registration: bool = False
    outbound_proxy: str = ""
    transport: Literal["udp", "tcp", "tls"] = "udp"
    #: dial plan: "module:function" turning an E.164 number into the Request-URI user part
    #: (e.g. to strip the "+" or add a tech prefix); "" sends the E.164 number as it is
    dial_plan: str = Field(default="", pattern=r"^$|^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    #: how the agents' keypad digits go out (docs/call-controls.md): rfc2833 telephone-events
    #: or sip_info (carriers that need INFO); auto: RFC 2833, INFO when the far end's SDP
    #: offered no telephone-event
    dtmf_method: Literal["auto", "rfc2833", "sip_info"] = "auto"

    def user_for(self) -> Callable[[str], str]:
        """The dial plan as a function (imported once, at start)."""
        if not self.dial_plan:
            return lambda e164: e164
        module, _, name = self.dial_plan.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(
                f"sip.trunks.*.dial_plan = {self.dial_plan!r}: cannot import it ({e}); "
                "expected module:function"
            ) from e
        if not callable(fn):
            raise ConfigError(f"sip.trunks.*.dial_plan = {self.dial_plan!r}: not a function")
        return fn  # type: ignore[no-any-return]


class SipSection(_Section):
    #: number of node processes, or "auto" (sized from the campaigns' planned concurrency)
    nodes: int | Literal["auto"] = "auto"
    bind: str = "127.0.0.1"
    #: node i listens on base_port + i; 0 lets every node pick a free port
    base_port: int = Field(default=5080, ge=0, le=65000)
    transports: list[Literal["udp", "tcp", "tls"]] = ["udp"]
    #: call setups per second per node (the PyPI wheel aborts above ~60/s)
    setup_rate_per_node: float = Field(default=40.0, gt=0, le=2000)
    agent_answer_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: an answered leg with no RTP for this long is hung up (a far end that vanished); 0 = off
    media_timeout_s: float = Field(default=20.0, ge=0, le=3600)
    #: SIP session timers on trunk calls (RFC 4028 Session-Expires); 0 = PJSIP's default
    session_expires_s: int = Field(default=1800, ge=0, le=86400)
    #: per-trunk circuit breaker (docs/trunks.md): consecutive trunk failures that open it,
    #: OPTIONS probe period while open, keep-alive period while closed (0 = none)
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_probe_interval_s: float = Field(default=2.0, gt=0, le=600)
    breaker_keepalive_s: float = Field(default=10.0, ge=0, le=3600)
    trunks: dict[str, TrunkSection] = {}


#: a console's base URL (WebSection.advertise_url): http(s), a host or [IPv6], a port
_BASE_URL = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?/?")

class WebSection(_Section):
    """The web server: agent desktop, supervisor console, CRM API (docs/web.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port (logged at start)
    port: int = Field(default=8080, ge=0, le=65535)
    #: mark the session cookie `Secure`: set it when a TLS proxy serves the pages
    secure_cookies: bool = False
    #: a session unused for this long ends (the person signs in again)
    session_idle_s: float = Field(default=43200.0, ge=60, le=90 * 86400)
    #: the reasons the desktop offers for a pause (the protocol takes any 1-64 chars)
    pause_reasons: list[str] = Field(
        default=["break", "lunch", "training", "meeting", "technical"], min_length=1)
    #: CRM API (docs/api.md): requests per second each token may make on average, and the
    #: burst it may make at once (a token bucket per token; more gets 429 + Retry-After)
    api_rate_per_s: float = Field(default=20.0, gt=0, le=10_000)
    api_burst: int = Field(default=40, ge=1, le=100_000)
    #: CRM API: the largest request body accepted (413 before it is parsed)
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    #: [cluster]: the base URL the other instances reach this console at (docs/cluster.md),
    #: e.g. "http://10.0.0.12:8080"; "" = http://<host>:<port> as bound
    advertise_url: str = Field(default="", max_length=300)

    @field_validator("advertise_url")
    @classmethod
    def _advertise_url(cls, v: str) -> str:
        if v and not _BASE_URL.fullmatch(v):
            raise ValueError("expected http(s)://host[:port], no path, query or user")
        return v.rstrip("/")

    @field_validator("pause_reasons")
    @classmethod
    def _reasons(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not 1 <= len(r) <= 64]
        if bad:
            raise ValueError("expected reasons of 1 to 64 characters")
        if len(set(v)) != len(v):
            raise ValueError("expected each reason once")
        return v


class AgentConfig(_Section):
    login: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sip_uri: str
    display_name: str = ""
    #: the password's hash, "$argon2id$..." as printed by `dialer agents hash-password`
    #: ("scrypt$..." of older versions still works): the embedded MQTT broker checks it
    #: (Mosquitto keeps its own password file), and it creates the agent's web account at
    #: start when the database has none (docs/web.md)
    password_hash: str = ""
    #: deprecated: the MQTT password in plain text (use password_hash)
    password: str = ""
    #: the campaign this agent takes calls for ("" = the first campaign of the file)
    campaign: str = ""
    #: named groups (e.g. ["closers"]) a transfer can name instead of an agent; unset: the
    #: groups kept in the database (`dialer agents groups`) stay as they are
    groups: list[str] | None = None

    @field_validator("groups")
    @classmethod
    def _group_names(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_groups(v)

    @field_validator("password_hash")
    @classmethod
    def _hash_form(cls, v: str) -> str:
        return check_password_hash(v) if v else v

    @property
    def mqtt_secret(self) -> str:
        """What the embedded broker checks a login against: the hash, else the (deprecated)
        plain password; dialer.passwords.verify_password takes either."""
        return self.password_hash or self.password


class CampaignConfig(_Section):
    """A campaign as declared in the config file; `dialer run` creates or updates it."""

    name: str = Field(min_length=1, max_length=100)
    caller_id: str
    dial_mode: DialMode = DialMode.PREDICTIVE
    trunk: str | None = None
    timezone: str = "UTC"
    ring_timeout_s: float = Field(default=25.0, ge=5, le=120)
    min_ring_s: float = Field(default=15.0, ge=0, le=120)
    lines_per_agent: float = Field(default=2.0, ge=1, le=10)
    max_dial_level: float = Field(default=3.0, ge=1, le=10)
    abandon_cap: float = Field(default=0.03, gt=0, lt=1)
    abandon_window: AbandonWindow = AbandonWindow.ROLLING_30D
    abandon_grace_s: float = Field(default=2.0, gt=0, le=10)
    abandon_clock_start: AbandonClockStart = AbandonClockStart.ANSWER
    amd_enabled: bool = False
    # pick-up + the VAD analyser's greeting budget (4.5 s) + its closing silence (docs/sip.md)
    amd_max_ms: int = Field(default=6500, ge=500, le=10000)
    #: vad (voice activity + beep; decides on what follows the greeting) | energy (the
    #: classic energy/cadence rules, the fallback)
    amd_method: Literal["vad", "energy"] = "vad"
    #: vad: a greeting still going on this long after it began is a recording; the
    #: campaign's decision-time budget for business answers (receptionists talk 2-4 s)
    amd_greeting_budget_ms: int = Field(default=4500, ge=1000, le=8000)
    #: vad: the decision deadline for people, ms after answer (0 = none): a caller who has
    #: stopped after a short answer by then is HUMAN without the full closing silence
    amd_decide_by_ms: int = 2500
    #: run AMD on leads of a client company (false: those calls always go to an agent)
    amd_company_numbers: bool = True
    machine_policy: MachinePolicy = MachinePolicy.HANG_UP
    message_wav: str | None = None
    #: what held customers hear (a WAV, mono 16-bit PCM, 8 or 16 kHz, looped); "" = silence
    hold_music_wav: str = ""
    #: key pressed during the abandon message that puts the number on the DNC list ("" = off)
    optout_key: str = Field(default="9", pattern=r"^[0-9*#]?$")
    record_calls: bool = False
    #: the compliance preset (docs/compliance.md): callee hours plus the jurisdiction's limits
    calling_window: str = "us_federal"
    #: people AMD classes as machines, counted as abandons where the preset says so (UK);
    #: unset: the preset's default (the AMD benchmark's measured rate)
    amd_false_positive_rate: float | None = Field(default=None, ge=0, lt=1)
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    callback_grace_s: float = Field(default=900.0, ge=0)
    #: an agent still in wrap-up after this is made ready; the call gets "wrapup_timeout"
    max_wrapup_s: float = Field(default=600.0, ge=0)
    #: a connected call is hung up after this many seconds from the answer (a far end that
    #: never hangs up must not hold an agent forever); 0 = no limit
    max_call_s: float = Field(default=3600.0, ge=0)
    max_attempts: int = Field(default=6, ge=1, le=100)
    script: str = ""

    @field_validator("caller_id")
    @classmethod
    def _e164(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"\+[1-9]\d{6,14}", v):
            raise ValueError("expected a diallable E.164 number such as +14155550100")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError("expected an IANA time zone such as Europe/Riga") from e
        return v

    @field_validator("amd_decide_by_ms")
    @classmethod
    def _decide_by(cls, v: int) -> int:
        if v and not 1000 <= v <= 30_000:
            raise ValueError("expected 0 (no deadline) or 1000-30000 ms after answer")
        return v

    @model_validator(mode="after")
    def _within_preset(self) -> CampaignConfig:
        """A campaign may be stricter than its compliance preset, never looser."""
        from scheduling.calendar import CalendarError
        from scheduling.compliance import check_campaign, compliance_preset

        try:
            preset = compliance_preset(self.calling_window)
        except CalendarError as e:
            raise ValueError(f"calling_window: {e}") from None
        if self.amd_method == "vad" and self.amd_max_ms < self.amd_greeting_budget_ms + 1500:
            raise ValueError(
                f"amd_max_ms: {self.amd_max_ms} leaves no time after amd_greeting_budget_ms "
                f"({self.amd_greeting_budget_ms}): give at least the budget + 1500 (pick-up "
                "and the silence that ends a greeting), or long greetings end as unknown")
        if self.amd_method == "vad" and self.amd_decide_by_ms > self.amd_max_ms:
            raise ValueError(
                f"amd_decide_by_ms: {self.amd_decide_by_ms} is after amd_max_ms "
                f"({self.amd_max_ms}), so the analysis always ends first: expected 0 (no "
                f"deadline) or 1000-{self.amd_max_ms} ms after answer")
        problems = check_campaign(
            preset, abandon_cap=self.abandon_cap, abandon_window=self.abandon_window,
            abandon_grace_s=self.abandon_grace_s, caller_id=self.caller_id)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SchedulingSection(_Section):
    #: local time (campaign zone) at which the day's plan is built
    plan_time: str = Field(default="06:00", pattern=r"^\d{2}:\d{2}$")
    #: local time at which the end-of-day report is written
    report_time: str = Field(default="21:30", pattern=r"^\d{2}:\d{2}$")
    callback_reminder_s: float = Field(default=600.0, ge=0)
    #: a hopper claim expires after this long (another process may then take the lead)
    claim_ttl_s: float = Field(default=300.0, gt=0)
    #: lock-out after an abandoned call (UK: 72 h unless an agent is reserved)
    abandon_lockout_s: float = Field(default=72 * 3600.0, ge=0)


class WebhooksSection(_Section):
    """Outcome webhooks' delivery worker (docs/webhooks.md); subscriptions are made over the
    API. The defaults retry a delivery for 24 h; shorter horizons are for tests."""

    enabled: bool = True
    #: how often an idle worker looks for new events
    poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    #: one POST may take this long (connect + response) before it counts as failed
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: a failing delivery is retried this long before it becomes a dead letter
    retry_horizon_s: float = Field(default=24 * 3600.0, gt=0)
    first_backoff_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=3600.0, gt=0)
    #: POSTs in flight at once (one per lead and subscription at a time in any case)
    max_in_flight: int = Field(default=16, ge=1, le=256)
    #: delivered deliveries (and their events) are deleted after this many days
    keep_delivered_days: float = Field(default=7.0, gt=0)

    @field_validator("max_backoff_s")
    @classmethod
    def _backoff_order(cls, v: float, info: Any) -> float:
        first = info.data.get("first_backoff_s")
        if first is not None and v < first:
            raise ValueError(f"expected >= webhooks.first_backoff_s ({first})")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIALER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    dialer: DialerSection = DialerSection()
    cluster: ClusterSection = ClusterSection()
    database: DatabaseSection = DatabaseSection()
    mqtt: MqttSection = MqttSection()
    metrics: MetricsSection = MetricsSection()
    sip: SipSection = SipSection()
    scheduling: SchedulingSection = SchedulingSection()
    web: WebSection = WebSection()
    webhooks: WebhooksSection = WebhooksSection()
    agents: list[AgentConfig] = []
    campaigns: list[CampaignConfig] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_PATH.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The TOML path for the settings being built (pydantic-settings reads sources from the class).
_CONFIG_PATH: dict[str, Path | None] = {"path": None}


_TYPE_TAGS = ("int", "float", "str", "bool", "literal[", "list[", "dict[")

def _describe(err: dict[str, Any], raw: dict[str, Any]) -> str:
    # pydantic appends the union member tried ("int", "literal['auto']") to the location
    loc = [p for p in err["loc"] if not str(p).startswith(_TYPE_TAGS)]
    err = {**err, "loc": tuple(loc)}
    key = ".".join(str(p) for p in loc)
    value: Any = raw
    for part in err["loc"]:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = err.get("input", "<missing>")
            break
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (typo? see deploy/dialer.example.toml)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    strs = [str(p) for p in loc]
    if any(is_secret_key(p) for p in strs) or any(
        tuple(strs[: len(m)]) == m and len(strs) > len(m) for m in _SECRET_MAPS
    ):
        return f"{key} = (hidden): {msg}"
    if isinstance(value, str):
        value = redact_url(value)
    return f"{key} = {value!r}: {msg}"


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; raise ConfigError naming every bad key."""
    if path is None and os.environ.get("DIALER_CONFIG"):
        path = os.environ["DIALER_CONFIG"]
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
    _CONFIG_PATH["path"] = path
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        lines: list[str] = []
        for err in e.errors():
            line = _describe(err, raw)
            key = line.split(" ", 1)[0]
            same = [i for i, seen in enumerate(lines) if seen.split(" ", 1)[0] == key]
            if same:  # a union: merge "expected X" and "expected Y" into one line
                lines[same[0]] += f"; or {line.split(': ', 1)[1]}"
            else:
                lines.append(line)
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}:\n  " + "\n  ".join(lines)) from None
    finally:
        _CONFIG_PATH["path"] = None
    _check_cross_references(settings)
    _warn_deprecated(settings)
    return settings


def _check_hold_music(key: str, path: str) -> str | None:
    """A problem with a campaign's hold music WAV (None: usable)."""
    import wave

    try:
        with wave.open(path, "rb") as w:
            form = (w.getnchannels(), w.getsampwidth(), w.getframerate())
    except FileNotFoundError:
        return f"{key} = {path!r}: no such file"
    except (OSError, EOFError, wave.Error) as e:
        return f"{key} = {path!r}: not a readable PCM WAV file ({e})"
    if form[0] != 1 or form[1] != 2 or form[2] not in (8000, 16000):
        return (f"{key} = {path!r}: expected mono 16-bit PCM at 8 or 16 kHz, got "
                f"{form[0]} channel(s), {form[1] * 8}-bit, {form[2]} Hz")
    return None


def _check_cross_references(s: Settings) -> None:
    problems = []
    for name, trunk in s.sip.trunks.items():
        try:
            trunk.user_for()
        except ConfigError as e:
            problems.append(str(e).replace("sip.trunks.*.", f"sip.trunks.{name}."))
    for i, c in enumerate(s.campaigns):
        if c.trunk is not None and c.trunk not in s.sip.trunks:
            problems.append(
                f"campaigns.{i}.trunk = {c.trunk!r}: expected one of the [sip.trunks.*] names "
                f"{sorted(s.sip.trunks)}"
            )
        if c.hold_music_wav:
            problem = _check_hold_music(f"campaigns.{i}.hold_music_wav", c.hold_music_wav)
            if problem:
                problems.append(problem)
        if c.min_ring_s > c.ring_timeout_s:
            problems.append(
                f"campaigns.{i}.min_ring_s = {c.min_ring_s}: expected <= ring_timeout_s "
                f"({c.ring_timeout_s})"
            )
    names = [c.name for c in s.campaigns]
    for i, a in enumerate(s.agents):
        if a.campaign and a.campaign not in names:
            problems.append(f"agents.{i}.campaign = {a.campaign!r}: expected one of the "
                            f"[[campaigns]] names {names}")
    if len(set(names)) != len(names):
        problems.append(f"campaigns: duplicate campaign names in {names}")
    if s.cluster.enabled and (not s.mqtt.url or s.database.url.startswith("sqlite")):
        problems.append("cluster.enabled: several instances need a shared external broker "
                        "([mqtt] url) and PostgreSQL ([database] url), docs/cluster.md")
    if s.cluster.enabled and s.web.enabled and s.web.host in ("0.0.0.0", "::", "") \
            and not s.web.advertise_url:  # every address is none another instance can use
        problems.append(f"web.advertise_url: [cluster] with web.host = {s.web.host!r}: set "
                        "where the other instances reach this console, e.g. http://10.0.0.12:8080")
    if s.cluster.enabled and s.cluster.lease_ttl_s < 2 * s.cluster.heartbeat_s:
        problems.append(f"cluster.lease_ttl_s = {s.cluster.lease_ttl_s}: expected at least "
                        f"twice heartbeat_s ({s.cluster.heartbeat_s})")
    logins = [a.login for a in s.agents]
    if len(set(logins)) != len(logins):
        problems.append(f"agents: duplicate agent logins in {logins}")
    for i, a in enumerate(s.agents):
        if a.password and a.password_hash:
            problems.append(f"agents.{i}.password: set either password_hash or the deprecated "
                            "password, not both")
        elif a.password.startswith(("scrypt$", "$argon2")):
            problems.append(f"agents.{i}.password: holds a hash; expected it under "
                            "password_hash (password is the deprecated plain-text form)")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _warn_deprecated(s: Settings) -> None:
    for i, a in enumerate(s.agents):
        if a.password:
            log.warning(
                "agents.%d.password (agent %s): a plain-text password is deprecated; replace "
                "it with password_hash = \"$argon2id$...\" as printed by `dialer agents "
                "hash-password`", i, a.login)
