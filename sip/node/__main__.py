"""``python -m sip.node``: how the pool starts a node process (sip/pool.py)."""

from __future__ import annotations

import sys

from sip.node.runtime import main

if __name__ == "__main__":
    sys.exit(main())
