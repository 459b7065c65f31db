"""Validated configuration of the node pool and its trunks (no pjsua2 import).

Values are checked once at construction so a bad config fails loudly at start, naming the
field, rather than as a SIP error in the middle of a campaign.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from sip.api import SipApiError
from sip.trunk_health import BreakerConfig

Transport = Literal["udp", "tcp", "tls"]
_TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkConfig:
    """A SIP account used for outbound calls (digest auth, optional registration).

    ``domain`` forms the account identity ``sip:<username>@<domain>``; ``outbound_proxy`` (a SIP
    URI, e.g. ``sip:10.0.0.1:5060;lr``) routes every request of the trunk; with ``register`` the
    node keeps a registration at ``registrar`` (defaults to ``sip:<domain>``).
    """

    name: str
    domain: str
    username: str = ""
    password: str = ""
    realm: str = "*"
    register: bool = False
    registrar: str | None = None
    outbound_proxy: str | None = None
    transport: Transport = "udp"
    #: per-trunk cap on concurrent calls (None: only node capacity limits it)
    max_channels: int | None = None
    #: probe the trunk with SIP OPTIONS (keep-alive and while its breaker is open); False for
    #: a trunk that ignores OPTIONS: an open breaker then goes half-open after the probe
    #: interval and a trial call decides (docs/trunks.md)
    options_probe: bool = True
    #: how the agent's keypad reaches this trunk's callees (docs/call-controls.md): "auto"
    #: (RFC 2833, SIP INFO when the callee offers no telephone-event), "rfc2833", "sip_info"
    dtmf_method: str = "auto"

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise SipApiError("TrunkConfig.name must be a non-empty string")
        if not self.domain or any(c in self.domain for c in " <>@"):
            raise SipApiError(
                f"TrunkConfig[{self.name}].domain must be host[:port], got {self.domain!r}"
            )
        for attr in ("registrar", "outbound_proxy"):
            v = getattr(self, attr)
            if v is not None and not str(v).lower().startswith(("sip:", "sips:")):
                raise SipApiError(f"TrunkConfig[{self.name}].{attr} must be a SIP URI, got {v!r}")
        if self.register and not self.username:
            raise SipApiError(f"TrunkConfig[{self.name}]: register=True needs a username")
        if self.transport not in _TRANSPORTS:
            raise SipApiError(f"TrunkConfig[{self.name}].transport must be one of {_TRANSPORTS}")
        if self.max_channels is not None and self.max_channels <= 0:
            raise SipApiError(f"TrunkConfig[{self.name}].max_channels must be positive")
        if self.dtmf_method not in ("auto", "rfc2833", "sip_info"):
            raise SipApiError(
                f"TrunkConfig[{self.name}].dtmf_method must be auto, rfc2833 or sip_info"
            )

    @property
    def id_uri(self) -> str:
        user = self.username or "dialer"
        return f"sip:{user}@{self.domain}"

    @property
    def registrar_uri(self) -> str:
        return self.registrar or f"sip:{self.domain}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """What one node process needs to start (sent to it as JSON on its command line)."""

    node_id: int
    bind_address: str = "127.0.0.1"
    #: SIP port of this node (0: any free port, reported back in the hello message)
    sip_port: int = 0
    transports: tuple[Transport, ...] = ("udp",)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    trunks: tuple[TrunkConfig, ...] = ()
    #: first RTP port this node tries (0: a random even port in 16384-32703, so nodes and
    #: concurrent runs rarely reuse a port another call has just left)
    rtp_port: int = 0
    pjsip_log_level: int = 0
    #: upper bound tried when measuring capacity (a raised-limit PJSIP build)
    capacity_probe_limit: int = 512
    user_agent: str = "dialer-sip-node"
    #: hang up an answered leg (customer, or bridged agent) that received no RTP this long
    #: (0: never)
    media_timeout_s: float = 20.0
    #: SIP session timer (RFC 4028) asked for on trunk accounts, seconds (0: PJSIP's default,
    #: used only when the far end asks)
    session_expires_s: int = 1800

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["transports"] = list(self.transports)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NodeConfig:
        d = dict(d)
        d["transports"] = tuple(d.get("transports", ("udp",)))
        d["trunks"] = tuple(TrunkConfig(**t) for t in d.get("trunks", ()))
        return cls(**d)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """The node pool.

    ``nodes``: a count, or "auto" to size from ``planned_concurrency`` (customer calls in flight
    at once; each reserves two slots, customer + agent, on one node) once the first node has
    reported its measured capacity.
    """

    nodes: int | Literal["auto"] = 1
    planned_concurrency: int = 0
    bind_address: str = "127.0.0.1"
    #: first SIP port; node i uses base_port + i (0: every node picks a free port)
    base_port: int = 0
    transports: tuple[Transport, ...] = ("udp",)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    trunks: dict[str, TrunkConfig] = field(default_factory=dict)
    #: call setups (INVITEs incl. agent legs) per second per node; the PyPI wheel aborts above ~60
    setup_rate_per_node: float = 40.0
    #: default recorded message (safe-harbour / abandon message) for Play without a path
    message_wav: str | None = None
    node_start_timeout_s: float = 20.0
    restart_crashed: bool = True
    pjsip_log_level: int = 0
    #: directory for per-node logs (node-<i>.log: PJSIP console output + node warnings);
    #: None: PJSIP output is discarded and node warnings go to the pool's stderr
    node_log_dir: str | None = None
    python: str | None = None
    max_nodes: int = 256
    #: per-trunk circuit breaker and OPTIONS probing (docs/trunks.md)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    #: hang up an answered leg that received no RTP this long (0: never; docs/trunks.md)
    media_timeout_s: float = 20.0
    #: SIP session timer asked for on trunk accounts (0: only when the far end asks)
    session_expires_s: int = 1800

    def __post_init__(self) -> None:
        if self.nodes != "auto" and (not isinstance(self.nodes, int) or self.nodes <= 0):
            raise SipApiError(
                f"PoolConfig.nodes must be a positive int or 'auto', got {self.nodes!r}"
            )
        if self.nodes == "auto" and self.planned_concurrency <= 0:
            raise SipApiError("PoolConfig.nodes='auto' needs planned_concurrency > 0")
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError as exc:
            raise SipApiError(f"PoolConfig.bind_address must be an IP address: {exc}") from exc
        if not (0 <= self.base_port <= 65535):
            raise SipApiError("PoolConfig.base_port must be 0..65535")
        if not self.transports or any(t not in _TRANSPORTS for t in self.transports):
            raise SipApiError(f"PoolConfig.transports must be a non-empty subset of {_TRANSPORTS}")
        if "tls" in self.transports and not (self.tls_cert_file and self.tls_key_file):
            raise SipApiError("PoolConfig: the tls transport needs tls_cert_file and tls_key_file")
        if not (0 < self.setup_rate_per_node <= 10_000):
            raise SipApiError("PoolConfig.setup_rate_per_node must be in (0, 10000]")
        for name, t in self.trunks.items():
            if t.transport not in self.transports:
                raise SipApiError(
                    f"PoolConfig: trunk {name!r} uses {t.transport} but transports are "
                    f"{self.transports}"
                )
            if name != t.name:
                raise SipApiError(
                    f"PoolConfig.trunks key {name!r} differs from its name {t.name!r}"
                )
        if self.node_start_timeout_s <= 0:
            raise SipApiError("PoolConfig.node_start_timeout_s must be positive")
        if not isinstance(self.breaker, BreakerConfig):
            raise SipApiError("PoolConfig.breaker must be a sip.trunk_health.BreakerConfig")
        check_media_timeout(self.media_timeout_s, "PoolConfig.media_timeout_s")
        if not isinstance(self.session_expires_s, int) or not (
            self.session_expires_s == 0 or 90 <= self.session_expires_s <= 86_400
        ):
            raise SipApiError(
                f"PoolConfig.session_expires_s must be 0 or an int in [90, 86400], "
                f"got {self.session_expires_s!r}"
            )

    def node_count_for(self, capacity_per_node: int) -> int:
        """Nodes needed for ``planned_concurrency`` customer+agent pairs at a measured capacity."""
        if self.nodes != "auto":
            return self.nodes
        pairs_per_node = max(1, capacity_per_node // 2)
        return min(self.max_nodes, max(1, math.ceil(self.planned_concurrency / pairs_per_node)))

    def node_config(self, node_id: int) -> NodeConfig:
        return NodeConfig(
            node_id=node_id,
            bind_address=self.bind_address,
            sip_port=(self.base_port + node_id) if self.base_port else 0,
            transports=self.transports,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
            trunks=tuple(self.trunks.values()),
            pjsip_log_level=self.pjsip_log_level,
            media_timeout_s=self.media_timeout_s,
            session_expires_s=self.session_expires_s,
        )


def check_media_timeout(value: float, name: str) -> None:
    """0 (off) or 1..3600 seconds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value == 0 or 1 <= value <= 3600)
    ):
        raise SipApiError(f"{name} must be 0 (off) or seconds in [1, 3600], got {value!r}")
