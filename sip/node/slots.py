"""pjsua's own view of the node's call slots, and a short BYE for dead dialogs.

Why this exists (issue #12, docs/trunks.md "Call slots after an outage"): since PJSIP 2.11
``Call.hangup()`` reports DISCONNECTED at once, but pjsua keeps the call's slot until the BYE
transaction ends - for a far end that no longer answers (a dead trunk proxy), Timer F,
64 x T1 = 32 s later. The node drops its Call object at DISCONNECTED, so without pjsua's
count the node and the pool believe the slot is free and the next ``makeCall`` gets
PJ_ETOOMANY. pjsua2 exposes neither the live-call count nor a per-call transaction timeout,
but the wheel's extension module exports the pjsua/pjsip C functions, so they are called
through ``ctypes`` (same process, same library instance, owner thread only):

* ``pjsua_call_get_count()`` - calls pjsua still holds, including those whose BYE or CANCEL
  is still in flight (the number ``makeCall`` checks before PJ_ETOOMANY), and
  ``pjsua_enum_calls()`` - their slot ids, so the node tells which of them it let go of;
* ``pjsip_tsx_set_timers(0, 0, 0, td)`` - the give-up time (Timer B/F) of transactions
  created from now on. The node lowers it only around the hangup of a dialog it already
  judged dead (no RTP for ``media_timeout_s``) and restores it at once: that BYE is still
  retransmitted normally and a live far end still answers it, but a dead one frees the slot
  after :data:`DEAD_BYE_TIMEOUT_S` instead of 32 s. T1 and every other transaction keep the
  RFC 3261 defaults (a global change would also shorten INVITE timeouts and retransmissions).

Every part degrades safely: a build without these symbols (or whose ``pjsip_cfg()`` does not
show the expected timer values) reports no count - the pool then keeps its own accounting -
and hangs dead dialogs up the ordinary way.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator

log = logging.getLogger("sip.node")

#: how long the BYE of a dialog judged dead may take before pjsua frees its slot; a live far
#: end answers a BYE within a few retransmissions (0.5, 1, 2 s) of this window
DEAD_BYE_TIMEOUT_S = 4.0
#: RFC 3261 T1, T2, T4 (ms) as pjsip_cfg()->tsx holds them; found there to locate ``td``
_RFC_T1_T2_T4 = (500, 4000, 5000)
#: PJSUA_MAX_CALLS of the largest build enumerated (the wheel: 4)
_MAX_IDS = 4096
#: 32-bit words of pjsip_sip_cfg_var scanned (its size in the 2.15 wheel: 96 bytes)
_CFG_WORDS = 24


class PjsuaSlots:
    """ctypes access to pjsua's call count and the transaction timeout (see module doc)."""

    def __init__(self, lib: ctypes.CDLL | None = None) -> None:
        self._count: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]
        self._enum: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]
        self._set_timers: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]
        self.default_td_ms: int | None = None
        try:
            lib = lib if lib is not None else _load_wheel_library()
            count = lib.pjsua_call_get_count
            count.restype = ctypes.c_uint
            count.argtypes = []
            enum = lib.pjsua_enum_calls
            enum.restype = ctypes.c_int
            enum.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_uint)]
            self._count, self._enum = count, enum
        except (OSError, AttributeError, ImportError) as exc:
            log.warning("node: pjsua call count unavailable (%s): slots are not reported", exc)
            return
        try:
            set_timers = lib.pjsip_tsx_set_timers
            set_timers.restype = None
            set_timers.argtypes = [ctypes.c_uint] * 4
            self.default_td_ms = _read_td(lib)
            self._set_timers = set_timers if self.default_td_ms else None
        except (OSError, AttributeError, ValueError) as exc:
            log.warning("node: transaction timers not adjustable (%s)", exc)

    @property
    def available(self) -> bool:
        return self._count is not None and self._enum is not None

    def live_calls(self) -> int | None:
        """Calls pjsua holds right now (None: unknown on this build)."""
        return int(self._count()) if self._count is not None else None

    def call_ids(self) -> set[int] | None:
        """pjsua's slot ids that hold a call right now (None: unknown on this build)."""
        if self._enum is None:
            return None
        ids = (ctypes.c_int * _MAX_IDS)()
        n = ctypes.c_uint(_MAX_IDS)
        if self._enum(ids, ctypes.byref(n)) != 0:
            return None
        return set(ids[: n.value])

    @contextlib.contextmanager
    def short_transactions(self, timeout_s: float = DEAD_BYE_TIMEOUT_S) -> Iterator[None]:
        """Transactions created inside the block give up after ``timeout_s`` (then restored)."""
        if self._set_timers is None or self.default_td_ms is None:
            yield
            return
        self._set_timers(0, 0, 0, max(1, int(timeout_s * 1000)))
        try:
            yield
        finally:
            self._set_timers(0, 0, 0, self.default_td_ms)


def _load_wheel_library() -> ctypes.CDLL:
    """The already loaded pjsua2 extension (dlopen of the same path returns that instance)."""
    from pjsua2 import _pjsua2  # type: ignore[attr-defined]

    return ctypes.CDLL(_pjsua2.__file__)


def _read_td(lib: ctypes.CDLL) -> int:
    """The current ``td`` (ms) from ``pjsip_cfg()->tsx`` {max_count, t1, t2, t4, td}.

    ``pjsip_cfg()`` is an inline accessor of the exported ``pjsip_sip_cfg_var`` (96 bytes in
    2.15). The timer block's offset differs between PJSIP versions, so it is found by its RFC
    values; anything else (a build with other timers) disables the short BYE.
    """
    words = (ctypes.c_uint * _CFG_WORDS).in_dll(lib, "pjsip_sip_cfg_var")
    for i in range(len(words) - 3):
        if tuple(words[i : i + 3]) == _RFC_T1_T2_T4:
            td = int(words[i + 3])
            if 1000 <= td <= 600_000:
                return td
    raise ValueError("T1/T2/T4 not found at their RFC 3261 defaults in pjsip_cfg()")


class HeldSlots:
    """Which pjsua calls the node has let go of but pjsua still holds (pure: ids and times in).

    A call the node hung up as a dead dialog counts at once (its BYE will hang for
    :data:`DEAD_BYE_TIMEOUT_S`); any other one only after lingering ``grace_s``: a normal end
    frees its slot within a round trip, and counting it would make the pool refuse calls for
    those milliseconds (the node itself retries PJ_ETOOMANY for that long).
    """

    def __init__(self, grace_s: float = 0.5) -> None:
        self.grace_s = grace_s
        self._since: dict[int, float] = {}
        self._dead: set[int] = set()

    def mark_dead(self, pjsua_id: int) -> None:
        if pjsua_id >= 0:
            self._dead.add(pjsua_id)

    def count(self, pjsua_ids: set[int], live_ids: set[int], now: float) -> int:
        """Held slots among ``pjsua_ids`` given the ids of the calls still in use."""
        let_go = pjsua_ids - live_ids
        # a slot let go of that is live again was freed and reused by a new call; a dead mark
        # on a live slot not let go of yet was made just before its hangup and stays
        self._dead -= live_ids & self._since.keys()
        self._dead &= pjsua_ids
        for gone in [i for i in self._since if i not in let_go]:
            del self._since[gone]  # destroyed, or reused by a live call
        held = 0
        for i in let_go:
            since = self._since.setdefault(i, now)
            if i in self._dead or now - since >= self.grace_s:
                held += 1
        return held
