"""One SIP node: an OS process owning one PJSIP endpoint (pjsua2), driven by pool commands.

Run as ``python -m sip.node --connect HOST:PORT --config JSON``. The process connects to the
pool, measures its call capacity, says hello, then executes commands and streams events.

Threading (docs/sip.md, "Node internals"): the process's main thread is the pjsua2 owner
thread. It creates the Endpoint with ``threadCnt=0`` / ``mainThreadOnly=True`` and loops on
``libHandleEvents``; a reader thread only decodes pool frames into a queue. Media callbacks
(AMD frames, player EOF) run on the media clock thread: they compute and queue, never touch
pjsua2. pjsua2 callbacks may re-enter (``hangup`` inside ``onCallState``), so they only update
leg state and queue work; anything that calls pjsua2 again is deferred to the owner loop.

Call objects: the only reference to a ``pj.Call`` lives in its leg and is dropped inside its
``onCallState(DISCONNECTED)``; a stale Call deleted later could hang up a new call that reuses
its slot.

Layout: the leg state machine and the call-end classification are pure (:mod:`sip.legs`);
this package is the pjsua2 glue around them:

* :mod:`sip.node.objects` - pjsua2 subclasses (Call, Account, AMD port, player, log writer),
  the legs holding them, the owner-loop waker;
* :mod:`sip.node.capacity` - the capacity probe run at start;
* :mod:`sip.node.base` - the node's state and shared actions (hang up, free media, emit);
* :mod:`sip.node.callbacks` - pjsua2 call/media callbacks;
* :mod:`sip.node.controls` - the call controls: hold, DTMF, listen-in and transfer legs, and
  the one function wiring a call's conference connections (docs/call-controls.md);
* :mod:`sip.node.commands` - the pool's commands;
* :mod:`sip.node.runtime` - endpoint start/shutdown, the owner loop, timers, ``main``.
"""

from __future__ import annotations

from sip.node.runtime import Node, main

__all__ = ["Node", "main"]
