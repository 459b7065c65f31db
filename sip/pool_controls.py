"""The pool's side of the call controls (sip.api_controls): routing and listen-leg slots.

A control command goes to the node holding its call, like ``Play`` or ``Hangup``. ``Listen``
adds a third leg to a call on *that* node (the supervisor must share the call's conference
bridge), so the pool reserves one more call slot there first and refuses the command at once,
retryable, when the node has none ("node full"). The slot comes back at the leg's
``ListenEnded``, at a refusal of the ``Listen`` by the node, or with the call's own slots at
its final event. A ``Listen`` for a listen leg that already exists only changes its mode and
takes no slot. ``TransferAgent`` reserves the new agent leg's slot the same way; it comes back
at ``AgentTransferred`` (the first agent's leg is hung up: the call is back to two slots) or
``TransferFailed``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sip.api import CallEnded, CommandRejected
from sip.api_controls import (
    CONTROL_COMMANDS,
    AgentTransferred,
    CallHeld,
    CancelTransfer,
    CompleteTransfer,
    ConsultStarted,
    DtmfSent,
    Hold,
    Listen,
    ListenEnded,
    ListenStarted,
    Resume,
    SendDtmf,
    StopListen,
    TransferAgent,
    TransferFailed,
)

if TYPE_CHECKING:
    from sip.pool_nodes import NodeHandle

log = logging.getLogger(__name__)

__all__ = ["CONTROL_COMMANDS", "PoolControls", "memory_call_ended", "memory_control"]


class PoolControls:
    """Mixed into :class:`sip.pool.NodePool` (uses its ``_by_call``, ``_reject``, ``_send``)."""

    #: extra leg id (listen_call_id, or a transfer's agent_call_id) -> (call_id, command)
    _extra_legs: dict[str, tuple[str, str]]

    def _extra_book(self) -> dict[str, tuple[str, str]]:
        book = self.__dict__.get("_extra_legs")
        if book is None:
            book = self._extra_legs = {}
        return book

    async def _submit_control(self, cmd: Any) -> None:
        pool: Any = self
        node: NodeHandle | None = pool._by_call.get(cmd.call_id)
        if node is None or not node.alive or node.writer is None:
            await pool._reject(cmd, "unknown call_id (ended or never placed)", False)
            return
        book = self._extra_book()
        leg_id = (
            cmd.listen_call_id if isinstance(cmd, Listen)
            else cmd.agent_call_id if isinstance(cmd, TransferAgent) else None
        )
        if leg_id is not None and leg_id not in book:
            # a third leg on the call's node (a mode change of a listen leg takes none)
            if node.free < 1:
                what = "a listen leg" if isinstance(cmd, Listen) else "the new agent's leg"
                await pool._reject(
                    cmd,
                    f"node full: no free call slot for {what} on {node.name} "
                    f"({node.in_use + node.held}/{node.capacity} in use)",
                    True,
                )
                return
            node.calls[cmd.call_id] = node.calls.get(cmd.call_id, 0) + 1
            node.in_use += 1
            book[leg_id] = (cmd.call_id, type(cmd).__name__)
            pool._take_token(node, wait=False)
        pool._send(node, cmd)

    def _account_control(self, node: NodeHandle, ev: Any) -> None:
        """Give an extra leg's slot back (called for every event the node sends): a listen
        leg's at its end; a transfer's at its outcome (the old agent's leg goes on success)."""
        book = self._extra_book()
        leg_id = (
            ev.listen_call_id if isinstance(ev, ListenEnded)
            else ev.agent_call_id if isinstance(ev, AgentTransferred | TransferFailed) else None
        )
        if leg_id is not None:
            if book.pop(leg_id, None) is not None:
                self._release_one(node, ev.call_id)
        elif isinstance(ev, CommandRejected) and ev.command in ("Listen", "TransferAgent"):
            # the node refused a new leg of this call: it held one reserved slot
            lid = next((k for k, v in book.items() if v == (ev.call_id, ev.command)), None)
            if lid is not None:
                del book[lid]
                self._release_one(node, ev.call_id)
        elif isinstance(ev, CallEnded) and ev.call_id in node.calls:
            for lid in [k for k, v in book.items() if v[0] == ev.call_id]:
                del book[lid]  # the call's final event frees all its slots

    @staticmethod
    def _release_one(node: NodeHandle, call_id: str) -> None:
        n = node.calls.get(call_id)
        if n is None:
            return  # the call ended already: its slots went with it
        node.calls[call_id] = n - 1
        node.in_use = max(0, node.in_use - 1)


# ---------------------------------------------------------------------------------------------
# The same commands in the in-memory pool (sip.memory), for tests without SIP
# ---------------------------------------------------------------------------------------------


def memory_control(pool: Any, leg: Any, cmd: Any) -> None:
    """What :class:`sip.memory.MemoryPool` does with a control command on an answered call:
    the events a node would send, at once (the phones answer immediately); the same
    refusals (not bridged, on hold twice, node full for a listen leg)."""
    listens: dict[str, str] = pool.__dict__.setdefault("_listen_modes", {}).setdefault(
        cmd.call_id, {}
    )
    held: set[str] = pool.__dict__.setdefault("_held_calls", set())
    stamp = pool._stamp()
    name = type(cmd).__name__
    if leg.state.value != "answered" and not isinstance(cmd, StopListen):
        pool._reject(cmd, "call not answered, unknown or ending", False)
        return
    if isinstance(cmd, SendDtmf):
        method = "rfc2833" if cmd.method == "auto" else cmd.method
        pool._emit(DtmfSent(call_id=cmd.call_id, count=len(cmd.digits), method=method, **stamp))
        return
    if isinstance(cmd, StopListen):
        if cmd.listen_call_id not in listens:
            pool._reject(cmd, "unknown listen_call_id", False)
            return
        del listens[cmd.listen_call_id]
        leg.slots -= 1
        pool._node.in_use -= 1
        pool._emit(ListenEnded(call_id=cmd.call_id, listen_call_id=cmd.listen_call_id,
                               reason="stopped", answered=True, **stamp))
        return
    if not leg.agent_bridged:
        pool._reject(cmd, "call not bridged to an agent", False)
    elif isinstance(cmd, TransferAgent) and not cmd.consult:
        # the new agent's phone answers at once (the SIPp agent phone does)
        previous, leg.agent_call_id = leg.agent_call_id or "", cmd.agent_call_id
        pool._emit(AgentTransferred(call_id=cmd.call_id, agent_call_id=cmd.agent_call_id,
                                    previous_agent_call_id=previous, **stamp))
    elif isinstance(cmd, TransferAgent | CompleteTransfer | CancelTransfer):
        _memory_consult(pool, leg, cmd, held, stamp)
    elif isinstance(cmd, Hold | Resume):
        if isinstance(cmd, Hold) == (cmd.call_id in held):
            pool._reject(cmd, "call already held" if isinstance(cmd, Hold)
                         else "call is not on hold", False)
            return
        (held.add if isinstance(cmd, Hold) else held.discard)(cmd.call_id)
        pool._emit(CallHeld(call_id=cmd.call_id, on_hold=isinstance(cmd, Hold), **stamp))
    elif isinstance(cmd, Listen):
        if cmd.listen_call_id not in listens:
            if pool._node.free < 1:
                pool._reject(cmd, "node full: no free call slot for a listen leg", True)
                return
            leg.slots += 1
            pool._node.in_use += 1
        listens[cmd.listen_call_id] = cmd.mode
        pool._emit(ListenStarted(call_id=cmd.call_id, listen_call_id=cmd.listen_call_id,
                                 mode=cmd.mode, **stamp))
    else:
        pool._reject(cmd, f"unsupported command {name}", False)


def _memory_consult(pool: Any, leg: Any, cmd: Any, held: set[str], stamp: Any) -> None:
    """A warm transfer in the memory pool: hold + ConsultStarted, then the swap or the cancel."""
    consults: dict[str, str] = pool.__dict__.setdefault("_consults", {})
    if isinstance(cmd, TransferAgent):
        if cmd.call_id in consults:
            pool._reject(cmd, "a transfer is in progress", False)
            return
        consults[cmd.call_id] = cmd.agent_call_id
        if cmd.call_id not in held:
            held.add(cmd.call_id)
            pool._emit(CallHeld(call_id=cmd.call_id, on_hold=True, **stamp))
        pool._emit(ConsultStarted(call_id=cmd.call_id, agent_call_id=cmd.agent_call_id, **stamp))
        return
    new = consults.pop(cmd.call_id, None)
    if new is None:
        pool._reject(cmd, "no transfer in progress", False)
    elif isinstance(cmd, CancelTransfer):
        pool._emit(TransferFailed(call_id=cmd.call_id, agent_call_id=new, sip_code=None,
                                  reason="cancelled", **stamp))
    else:
        previous, leg.agent_call_id = leg.agent_call_id or "", new
        pool._emit(AgentTransferred(call_id=cmd.call_id, agent_call_id=new,
                                    previous_agent_call_id=previous, **stamp))
        held.discard(cmd.call_id)
        pool._emit(CallHeld(call_id=cmd.call_id, on_hold=False, **stamp))


def memory_call_ended(pool: Any, call_id: str) -> None:
    """The memory pool's call ended: its listen legs go too (after its CallEnded)."""
    pool.__dict__.get("_held_calls", set()).discard(call_id)
    pool.__dict__.get("_consults", {}).pop(call_id, None)
    for lid in pool.__dict__.get("_listen_modes", {}).pop(call_id, {}):
        pool._emit(ListenEnded(call_id=call_id, listen_call_id=lid, reason="call ended",
                               answered=True, **pool._stamp()))
