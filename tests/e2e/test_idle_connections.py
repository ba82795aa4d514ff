"""The gateway keeps idle connections to each service open for reuse (upstream keepalive). The service must not
be the one to close an idle connection: if it closes one just as nginx reuses it, nginx answers 502 (a 503
"<service> unavailable" from the gateway) and does not retry a POST elsewhere. So nginx's idle limit must be the
shorter one. Checked on a real service process as `make up` starts it, on one HTTP/1.1 connection: a connection left idle
for longer than the gateway's limit must still take a request."""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path

GATEWAY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "shop.conf.template"


def gateway_idle_limit_seconds() -> int:
    limits = {int(s) for s in re.findall(r"^upstream .*keepalive_timeout (\d+)s;", GATEWAY_CONF.read_text(), re.M)}
    assert len(limits) == 1, f"every upstream should have the same keepalive_timeout, found {limits}"
    return limits.pop()


def health_check(connection: http.client.HTTPConnection) -> int:
    """One request on the connection as it is: http.client reconnects only if it saw the close itself."""
    connection.request("GET", "/api/orders/health")
    response = connection.getresponse()
    response.read()
    return response.status


def test_a_service_keeps_an_idle_connection_open_longer_than_the_gateway_does(stack):
    idle = gateway_idle_limit_seconds() + 1
    connection = http.client.HTTPConnection("127.0.0.1", stack.ports["orders"], timeout=10)
    try:
        assert health_check(connection) == 200
        time.sleep(idle)  # the thing under test is the idle time itself
        try:
            status = health_check(connection)
        except (http.client.RemoteDisconnected, ConnectionError) as exc:
            raise AssertionError(f"orders closed a connection idle for {idle}s, which the gateway would reuse: {exc!r}") from exc
    finally:
        connection.close()
    assert status == 200
