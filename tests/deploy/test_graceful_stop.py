"""A service process asked to stop (SIGTERM) drops no request: it refuses new connections (the gateway then
tries another replica, which is safe for any method), still answers what arrives on a connection it has open,
with `Connection: close`, and lets running requests finish. uvicorn on its own closes idle keep-alive
connections at once, so a request the gateway sends on one at that moment gets no answer."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(connection: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response


@pytest.fixture
def server():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "shop_common.serve", "drain_demo:create_app", "--port", str(port)], env=env
    )
    deadline = time.monotonic() + 20
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield process, port
    process.kill()
    process.wait()


def test_a_stopping_process_answers_on_open_connections_finishes_requests_and_refuses_new_ones(server):
    process, port = server
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert get(idle, "/health").status == 200  # now an idle keep-alive connection, as the gateway keeps them
    slow: list[int] = []
    running = threading.Thread(
        target=lambda: slow.append(get(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "/slow?seconds=1.5").status)
    )
    running.start()
    time.sleep(0.3)

    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        answered = get(idle, "/health")
    except (http.client.RemoteDisconnected, ConnectionError) as exc:
        pytest.fail(f"a request on an open connection got no answer after the stop began: {exc!r}")
    assert answered.status == 200 and answered.getheader("connection") == "close"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)

    running.join(10)
    assert slow == [200]  # the request that was running when the stop came finished
    # uvicorn ends a clean stop by raising the signal it caught again, as a process without handlers would.
    assert process.wait(15) == -signal.SIGTERM
