"""The namespace harness itself: hosts reach each other over the lab bridge, nothing is left."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from support.netns import NetLab, unavailable

LISTEN = ("import socket,sys; s=socket.socket(); "
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          "s.bind((sys.argv[1], 9000)); s.listen(); "
          "c,_=s.accept(); c.sendall(b'hello'); c.close()")
CONNECT = ("import socket,sys; print(socket.create_connection((sys.argv[1], 9000), 3)"
           ".recv(5).decode())")

why = unavailable()


@pytest.mark.skipif(why is not None, reason=why or "")
def test_hosts_reach_each_other_and_everything_goes_at_close() -> None:
    with NetLab() as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        server = lab.popen(b, [sys.executable, "-c", LISTEN, b.ip])
        for _ in range(50):
            r = lab.run(a, [sys.executable, "-c", CONNECT, b.ip], check=False)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        assert r.stdout.strip() == "hello", r.stderr
        server.wait(5)
        # the test process is a host too (the bridge's address)
        lab.popen(b, [sys.executable, "-c", LISTEN, b.ip])
        for _ in range(50):
            try:
                with socket.create_connection((b.ip, 9000), 3) as c:
                    assert c.recv(5) == b"hello"
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the bridge could not reach host b")
        # nothing but the lab: no default route inside a host
        assert "default" not in lab.run(a, ["ip", "route"]).stdout
        sleeper = lab.popen(a, ["sleep", "60"])
    assert sleeper.poll() is not None
    assert lab.leftovers() == []


def test_a_clear_reason_when_namespaces_cannot_be_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import support.netns as netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root (CI runs as root)"
