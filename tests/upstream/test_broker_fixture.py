"""The mosquitto fixture itself: real broker, stop/kill/restart on the same port."""

from __future__ import annotations

import socket

from hil.broker import Mosquitto
from tests.agentproc import Subscriber


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_broker_stop_kill_restart_same_port(broker: Mosquitto) -> None:
    port = broker.port
    sub = Subscriber(port, "t/#")
    import paho.mqtt.publish as publish

    publish.single("t/x", b"hello", qos=1, hostname="127.0.0.1", port=port)
    import time

    deadline = time.monotonic() + 5
    while not sub.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sub.messages == [("t/x", b"hello")]
    sub.close()
    broker.stop()
    assert not _listening(port)
    broker.start()
    assert broker.port == port and _listening(port)
    broker.kill()
    assert not _listening(port)
    broker.restart()
    assert _listening(port)
