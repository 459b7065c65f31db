"""The pool's side of the call controls (sip.api_controls): routing and listen-leg slots.

A control command goes to the node holding its call, like ``Play`` or ``Hangup``. ``Listen``
adds a third leg to a call on *that* node (the supervisor must share the call's conference
bridge), so the pool reserves one more call slot there first and refuses the command at once,
retryable, when the node has none ("node full"). The slot comes back at the leg's
``ListenEnded``, at a refusal of the ``Listen`` by the node, or with the call's own slots at
its final event. A ``Listen`` for a listen leg that already exists only changes its mode and
takes no slot.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sip.api import CallEnded, CommandRejected
from sip.api_controls import CONTROL_COMMANDS, Listen, ListenEnded

if TYPE_CHECKING:
    from sip.pool_nodes import NodeHandle

log = logging.getLogger(__name__)

__all__ = ["CONTROL_COMMANDS", "PoolControls"]


class PoolControls:
    """Mixed into :class:`sip.pool.NodePool` (uses its ``_by_call``, ``_reject``, ``_send``)."""

    #: listen_call_id -> customer call_id, for the listen legs holding a reserved slot
    _listen_of: dict[str, str]

    def _listen_book(self) -> dict[str, str]:
        book = self.__dict__.get("_listen_of")
        if book is None:
            book = self._listen_of = {}
        return book

    async def _submit_control(self, cmd: Any) -> None:
        pool: Any = self
        node: NodeHandle | None = pool._by_call.get(cmd.call_id)
        if node is None or not node.alive or node.writer is None:
            await pool._reject(cmd, "unknown call_id (ended or never placed)", False)
            return
        book = self._listen_book()
        if isinstance(cmd, Listen) and cmd.listen_call_id not in book:
            if node.free < 1:
                await pool._reject(
                    cmd,
                    f"node full: no free call slot for a listen leg on {node.name} "
                    f"({node.in_use + node.held}/{node.capacity} in use)",
                    True,
                )
                return
            node.calls[cmd.call_id] = node.calls.get(cmd.call_id, 0) + 1
            node.in_use += 1
            book[cmd.listen_call_id] = cmd.call_id
            pool._take_token(node, wait=False)
        pool._send(node, cmd)

    def _account_control(self, node: NodeHandle, ev: Any) -> None:
        """Give a listen leg's slot back (called for every event the node sends)."""
        if isinstance(ev, ListenEnded):
            if self._listen_book().pop(ev.listen_call_id, None) is not None:
                self._release_one(node, ev.call_id)
        elif isinstance(ev, CommandRejected) and ev.command == "Listen":
            book = self._listen_book()
            # the node refused a new listen leg of this call: it held one reserved slot
            lid = next((k for k, v in book.items() if v == ev.call_id), None)
            if lid is not None:
                del book[lid]
                self._release_one(node, ev.call_id)
        elif isinstance(ev, CallEnded) and ev.call_id in node.calls:
            book = self._listen_book()
            for lid in [k for k, v in book.items() if v == ev.call_id]:
                del book[lid]  # the call's final event frees all its slots

    @staticmethod
    def _release_one(node: NodeHandle, call_id: str) -> None:
        n = node.calls.get(call_id)
        if n is None:
            return  # the call ended already: its slots went with it
        node.calls[call_id] = n - 1
        node.in_use = max(0, node.in_use - 1)
