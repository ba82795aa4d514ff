"""The gateway as nginx really runs it (the config local mode renders), in front of a stand-in service:
request ids, routes, JSON errors, body limit, rate limit, and 503 for a service that is down."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from stack_files import ROOT, SERVICES, compose, find, local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandIn(BaseHTTPRequestHandler):
    """Answers like a service: echoes what it got, and returns the request id as the services do."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({
            "path": self.path, "request_id": self.headers.get("X-Request-ID"), "got": length,
            "client": self.headers.get("X-Forwarded-For"),
        }).encode()
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-ID", "set-by-the-service")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


class BreaksOff(BaseHTTPRequestHandler):
    """A replica that dies mid-request: reads the whole request, then closes the connection unanswered."""

    def _break_off(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    do_GET = do_POST = _break_off  # noqa: N815 - http.server's names

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def stand_in() -> Iterator[int]:
    yield from serve(StandIn)


@pytest.fixture(scope="module")
def breaks_off() -> Iterator[int]:
    yield from serve(BreaksOff)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        pytest.fail("nginx is needed for the gateway tests; `make test` and `make up` install it")
    return found


@pytest.fixture(scope="module")
def start_gateway(stand_in: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Starts a gateway with the given rate limit; every service goes to the stand-in but analytics (down)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(rate: int = 1000, burst: int = 1000, **settings: str) -> str:
        """settings: more of the gateway's (an upstream, the login limit); the shipped defaults when not given."""
        folder = tmp_path_factory.mktemp("gateway")
        port = free_port()
        env = dict(os.environ, GATEWAY_PORT=str(port), GATEWAY_RATE_LIMIT=str(rate), GATEWAY_RATE_BURST=str(burst))
        for service in SERVICES:
            env[f"{service.upper()}_UPSTREAM"] = f"127.0.0.1:{stand_in}"
        env["ANALYTICS_UPSTREAM"] = f"127.0.0.1:{free_port()}"  # nothing listens there
        env.update(settings)
        (folder / "logs").mkdir()
        subprocess.run([sys.executable, str(ROOT / "deploy/gateway/render.py"), str(folder / "gw"), str(folder / "logs")], env=env, check=True)
        process = subprocess.Popen([nginx_binary(), "-c", str(folder / "gw/nginx.conf"), "-p", str(folder / "gw")])
        started.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}"
            assert process.poll() is None, (folder / "logs/gateway.log").read_text()
            time.sleep(0.05)
        pytest.fail("the gateway did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., str]) -> str:
    return start_gateway()


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/products", "/api/products/7?limit=5", "/api/orders/3/pay", "/api/notifications/admin"])
def test_routes_each_service_path_unchanged(gateway, path):
    response = httpx.get(gateway + path)
    assert response.status_code == 200
    assert response.json()["path"] == path


def test_keeps_the_clients_request_id_passes_it_on_and_returns_it_once(gateway):
    response = httpx.get(gateway + "/api/orders", headers={"X-Request-ID": "client-id-42"})
    assert response.json()["request_id"] == "client-id-42"
    assert response.headers.get_list("X-Request-ID") == ["client-id-42"]


def test_makes_a_request_id_when_the_client_sent_none_or_a_bad_one(gateway):
    ids = set()
    for headers in ({}, {"X-Request-ID": "has spaces and {braces}"}, {}):
        response = httpx.get(gateway + "/api/products", headers=headers)
        (returned,) = response.headers.get_list("X-Request-ID")
        assert returned == response.json()["request_id"]
        assert len(returned) == 32 and returned != "set-by-the-service"
        ids.add(returned)
    assert len(ids) == 3


def test_unknown_paths_are_a_json_404_with_a_request_id(gateway):
    for path in ("/", "/api/payments/1", "/api/productsx"):
        response = httpx.get(gateway + path)
        assert response.status_code == 404
        assert response.json() == {"detail": "not found"}
        assert response.headers["X-Request-ID"]


def test_a_body_over_one_megabyte_is_a_json_413(gateway):
    fits = httpx.post(gateway + "/api/orders", content=b"x" * 1_000_000)
    assert fits.status_code == 200 and fits.json()["got"] == 1_000_000
    response = httpx.post(gateway + "/api/orders", content=b"x" * 1_100_000, headers={"X-Request-ID": "big-1"})
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert response.headers["X-Request-ID"] == "big-1"


def test_a_service_that_is_down_is_a_json_503_naming_it_and_when_to_try_again(gateway):
    response = httpx.get(gateway + "/api/analytics/summary")
    assert response.status_code == 503
    assert response.json() == {"detail": "analytics unavailable"}
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["X-Request-ID"]
    assert response.headers["Retry-After"] == "1"  # backpressure a client can act on, as the 429's


def test_past_the_rate_limit_a_client_gets_a_json_429(start_gateway):
    gateway = start_gateway(rate=2, burst=5)
    with httpx.Client() as client:
        codes = [client.get(gateway + "/api/products").status_code for _ in range(12)]
        limited = client.get(gateway + "/api/products")
    assert codes[:6] == [200] * 6  # the burst goes through at once
    assert 429 in codes[6:]
    assert limited.status_code == 429
    assert limited.json() == {"detail": "too many requests, slow down"}
    assert limited.headers["X-Request-ID"]
    assert limited.headers["Retry-After"] == "1"


def shipped_login_limit() -> tuple[int, int]:
    """GATEWAY_LOGIN_RATE_LIMIT and _BURST as shipped (deploy/gateway/render.py's defaults)."""
    spec = importlib.util.spec_from_file_location("gateway_render", ROOT / "deploy/gateway/render.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return int(render.DEFAULTS["GATEWAY_LOGIN_RATE_LIMIT"]), int(render.DEFAULTS["GATEWAY_LOGIN_RATE_BURST"])


RATE, BURST = shipped_login_limit()


def test_the_shipped_login_limit_is_tight():
    """Each login or register costs auth a password hash (argon2id, ~0.2 s of a CPU): an address may not keep
    a core busy with them (bench/abuse.py measures what a flood at that limit does to everyone else)."""
    assert RATE * 0.2 <= 0.5 and BURST <= 10, (RATE, BURST)


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register"])
def test_login_and_register_have_a_much_tighter_limit_of_their_own(start_gateway, path):
    """By default BURST at once, then RATE a second, while other routes keep going."""
    gateway = start_gateway()  # its own: login and register share one budget per address
    with httpx.Client() as client:
        started = time.monotonic()
        codes = [client.post(gateway + path, json={}).status_code for _ in range(BURST + 20)]
        took = time.monotonic() - started
        others = {client.get(gateway + "/api/products").status_code for _ in range(40)}
        refused = client.post(gateway + path, json={})
    assert codes[:BURST + 1] == [200] * (BURST + 1)  # the first and the burst
    # then one each 1/RATE s they took (a busy machine sends them slower, and more refill meanwhile)
    assert set(codes) <= {200, 429} and codes.count(200) <= BURST + 1 + int(took * RATE) + 1, (took, codes)
    assert codes.count(429) >= 1 or took > 19 / RATE  # refused some, unless so slow that the refill kept up
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"detail": "too many requests, slow down"}
    assert others == {200}


def test_a_login_flood_from_one_address_leaves_other_addresses_logging_in(start_gateway):
    """The limit is per client address: an address that floods login is refused (the gateway's JSON 429 with
    Retry-After, before auth spends a hash) and its other routes still answer, while a customer at another
    address logs in at once. Any of 127.0.0.0/8 is this machine, so a second address is a real second client."""
    gateway = start_gateway()
    with httpx.Client() as flooder:
        flood = [flooder.post(gateway + "/api/auth/login", json={}) for _ in range(BURST + 40)]
        other_route = flooder.get(gateway + "/api/orders/7")
    refused = [r for r in flood if r.status_code == 429]
    assert len(refused) >= 20, [r.status_code for r in flood]
    assert all(r.json() == {"detail": "too many requests, slow down"} for r in refused)
    assert all(r.headers["Retry-After"] == "1" and r.headers["X-Request-ID"] for r in refused)
    assert other_route.status_code == 200 and other_route.json()["client"] == "127.0.0.1"

    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as neighbour:
        logins = [neighbour.post(gateway + "/api/auth/login", json={}) for _ in range(3)]
    assert [r.status_code for r in logins] == [200, 200, 200]
    assert {r.json()["client"] for r in logins} == {"127.0.0.2"}  # the gateway saw, and passed on, its own address


def test_a_replica_that_breaks_off_is_retried_on_the_next_only_where_a_retry_cannot_do_twice(
    start_gateway, stand_in, breaks_off
):
    """Orders on two replicas, one of which dies mid-request: reads go to the other, and so does placing an
    order with an Idempotency-Key (orders answers a repeat with the first order); a POST without one, or one
    to a route that honours no key (pay), is not sent twice: the client gets the 503 and decides."""
    gateway = start_gateway(ORDERS_UPSTREAM=f"127.0.0.1:{breaks_off},127.0.0.1:{stand_in}")
    with httpx.Client(base_url=gateway) as client:
        def statuses(method: str, path: str, **headers: str) -> set[int]:  # both replicas get their turn
            return {client.request(method, path, headers=headers, json={}).status_code for _ in range(6)}

        assert statuses("GET", "/api/orders/7") == {200}
        assert statuses("POST", "/api/orders", **{"Idempotency-Key": "k-1"}) == {200}
        keyed = client.post("/api/orders?x=1", headers={"Idempotency-Key": "k-3"}, json={})
        assert keyed.json()["path"] == "/api/orders?x=1"  # the service sees the request as it was sent
        assert statuses("POST", "/api/orders") == {200, 503}
        assert statuses("POST", "/api/orders/7/pay", **{"Idempotency-Key": "k-2"}) == {200, 503}


def test_the_default_limit_lets_a_few_hundred_requests_a_second_through(gateway):
    with httpx.Client() as client:
        codes = {client.get(gateway + "/api/products").status_code for _ in range(300)}
    assert codes == {200}


def test_docker_modes_bash_health_probe_reads_the_status_through_the_gateway(gateway):
    port = gateway.rsplit(":", 1)[1]
    assert local(f"http_status 127.0.0.1 {port} /api/products/health").strip() == "200"
    assert local(f"http_status 127.0.0.1 {port} /api/analytics/health").strip() == "503"
    assert local(f"http_status 127.0.0.1 {free_port()} /api/products/health").strip() == "000"


@pytest.mark.parametrize("mode", ["compose", "kubernetes"])
def test_the_nginx_image_renders_the_template_into_a_config_nginx_accepts(mode, tmp_path):
    """What the official image's entrypoint does: envsubst over every variable defined in the container."""
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        pytest.fail("envsubst is needed (Debian package gettext-base)")
    if mode == "compose":
        settings = {k: str(v) for k, v in compose_gateway_env().items()}
    else:
        settings = kubernetes_gateway_env()
    # Service names resolve only inside compose or the cluster; nginx -t resolves them, so stand in here.
    settings = {k: v.replace(f"{k.removesuffix('_UPSTREAM').lower()}:", "127.0.0.1:") for k, v in settings.items()}
    settings = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in settings.items()}  # compose defaults
    container_env = {"PATH": os.environ["PATH"], "HOME": "/root", "HOSTNAME": "gateway-1", "NGINX_VERSION": "1.27.3", **settings}
    defined = " ".join(f"${{{name}}}" for name in container_env)
    template = (ROOT / "deploy/gateway/shop.conf.template").read_text()
    rendered = subprocess.run([envsubst, defined], input=template, env=container_env, capture_output=True, text=True, check=True).stdout
    assert "$shop_request_id" in rendered and "${" not in rendered
    (tmp_path / "shop.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path}; include {tmp_path}/shop.conf; }}\n"
    )
    checked = subprocess.run([nginx_binary(), "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def compose_gateway_env() -> dict[str, str]:
    return compose()["services"]["gateway"]["environment"]


def kubernetes_gateway_env() -> dict[str, str]:
    config = find("ConfigMap", "shop-config")["data"]
    (container,) = find("Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] if "value" in e else config[e["valueFrom"]["configMapKeyRef"]["key"]] for e in container["env"]}
