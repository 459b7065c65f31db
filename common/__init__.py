"""The leaf every room stands on: the shared vocabulary, the clock, process helpers.

`common` imports nothing of the project (an import-linter contract checks it), so the SIP
engine, the store, scheduling and the dialer can all speak the same words without an
arrow pointing up. See docs/architecture.md.
"""
