"""Telephony engine: pjsua2 node processes, the capacity-aware node pool, AMD, SIPp helpers.

The dialer core imports only :mod:`sip.api` (commands, events, classification) and
:mod:`sip.config`; :mod:`sip.pool` runs the nodes (:mod:`sip.node`). See docs/sip.md.
"""
