"""The production adapters (and MemoryPool) have every member of the port they stand for,
with the parameters the runtime passes (dialer/ports.py; the project runs no type checker,
so this is checked here)."""

from __future__ import annotations

import inspect

import pytest

from db.store import SqlStore
from dialer.app import DialerApp
from dialer.hopper import SchedulingCallability
from dialer.metrics import DialerMetrics
from dialer.ports import AgentBus, Callability, Metrics, SipPool, Store
from sip.memory import MemoryPool
from sip.pool import NodePool


def _members(proto: type) -> dict[str, object]:
    return {n: v for n, v in vars(proto).items()
            if not n.startswith("_") and (callable(v) or isinstance(v, property))}


@pytest.mark.parametrize(("port", "adapter"), [
    (SipPool, NodePool), (SipPool, MemoryPool), (Store, SqlStore),
    (Callability, SchedulingCallability), (Metrics, DialerMetrics), (AgentBus, DialerApp),
], ids=lambda x: x.__name__)
def test_adapter_has_every_member_of_its_port(port: type, adapter: type) -> None:
    for name, member in _members(port).items():
        impl = getattr(adapter, name, None)
        assert impl is not None, f"{adapter.__name__} lacks {port.__name__}.{name}"
        if isinstance(member, property):
            assert isinstance(impl, property), f"{adapter.__name__}.{name} is not a property"
            continue
        assert callable(member) and callable(impl), name
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(member), name
        want = inspect.signature(member).parameters
        have = inspect.signature(impl).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in have.values())
        for pname, p in want.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                assert any(q.kind is p.kind for q in have.values()), (name, pname)
                continue
            assert pname in have or takes_kwargs, f"{adapter.__name__}.{name}: no {pname}"
