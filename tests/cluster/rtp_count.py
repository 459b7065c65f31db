"""An RTP endpoint that counts what reaches it, run inside a lab host (tests/cluster/lab.py).

``python rtp_count.py <ip> <state-file>``: binds a free even port on ``<ip>`` (sip.rtp_peer,
the test phones' media) and rewrites ``<state-file>`` every 0.2 s with JSON
``{"port", "rx_audio", "rx_voiced", "remote"}`` until killed. The lab's supervisor phone
(SIPp's phone.xml) answers with an SDP naming this port, so a test sees the audio a
listen-in sends to the supervisor and where it came from.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sip.rtp_peer import RtpHub


def main() -> None:
    ip, state = sys.argv[1], Path(sys.argv[2])
    with RtpHub(ip) as hub:
        peer = hub.peer()
        while True:
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps({
                "port": peer.port, "rx_audio": peer.rx_audio, "rx_voiced": peer.rx_voiced,
                "remote": list(peer.remote) if peer.remote else None,
            }))
            os.replace(tmp, state)  # readers never see half a file
            time.sleep(0.2)


if __name__ == "__main__":
    main()
