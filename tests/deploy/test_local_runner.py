"""Local mode's bookkeeping: the settings a second stack needs, and `make down` stopping only what `up` started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from stack_files import ROOT, local


def test_every_setting_moves_for_an_isolated_second_stack(tmp_path):
    env = {
        "SHOP_RUN_DIR": str(tmp_path / "run"), "SHOP_PORT_BASE": "19000", "SHOP_DB_PREFIX": "shoptest_x_",
        "SHOP_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/shoptest_x", "GATEWAY_PORT": "19080",
    }
    out = local('echo "$RUN_DIR $GATEWAY_URL $(service_port orders) $(database_url orders) $(amqp_vhost)"', env)
    assert out.split() == [
        str(tmp_path / "run"), "http://127.0.0.1:19080", "19003",
        "postgresql://postgres@127.0.0.1:5432/shoptest_x_orders", "shoptest_x",
    ]
    # <SERVICE>_DATABASE_URL wins over the prefix
    assert local("database_url orders", env | {"ORDERS_DATABASE_URL": "postgresql://h/o"}).strip() == "postgresql://h/o"
    assert local("amqp_vhost", {"AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"}).strip() == "/"


def test_a_service_reaches_this_machines_postgresql_through_its_unix_socket(tmp_path):
    """Where the server is this machine's and its socket is there, a service's URL names the socket's directory
    (asyncpg and libpq read a %2F-quoted host as one); TCP otherwise, or with SHOP_POSTGRES_SOCKET_DIR empty."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / ".s.PGSQL.5433"))
        env = {"SHOP_RUN_DIR": str(tmp_path / "run"), "SHOP_DB_PREFIX": "", "SHOP_POSTGRES_SOCKET_DIR": str(tmp_path),
               "SHOP_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5433/postgres"}
        quoted = str(tmp_path).replace("/", "%2F")
        assert local("service_database_url orders", env).strip() == f"postgresql://shop_orders@{quoted}:5433/orders"
        assert local("service_database_url orders", env | {"SHOP_POSTGRES_SOCKET_DIR": ""}).strip() == (
            "postgresql://shop_orders@127.0.0.1:5433/orders"
        )
        # another port's server has no socket here; another host's is not this machine's
        for url in ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@db.example:5433/postgres"):
            assert "%2F" not in local("service_database_url orders", env | {"SHOP_POSTGRES_URL": url})


def test_a_service_gets_its_own_user_on_every_node_of_a_cluster(tmp_path):
    """AMQP_URL listing a cluster's nodes (BROKER_NODES=3): each node's URL gets the service's user, the vhost
    is the first node's, the heartbeat query stays."""
    (tmp_path / "broker").mkdir()
    (tmp_path / "broker" / "orders.password").write_text("s3cret")
    nodes = "amqp://guest:guest@127.0.0.1:5701/v?heartbeat=5,amqp://guest:guest@127.0.0.1:5702/v?heartbeat=5"
    env = {"SHOP_RUN_DIR": str(tmp_path), "AMQP_URL": nodes, "SHOP_DB_PREFIX": ""}
    assert local("service_amqp_url orders", env).strip() == (
        "amqp://shop_orders:s3cret@127.0.0.1:5701/v?heartbeat=5,amqp://shop_orders:s3cret@127.0.0.1:5702/v?heartbeat=5"
    )
    assert local("amqp_vhost", env).strip() == "v"


def test_broker_users_go_only_to_the_node_rabbitmqctl_would_reach(tmp_path):
    """rabbitmqctl names a node, not a port: a broker on another port (the fault suite's own node) gets
    the users only when RABBITMQ_NODENAME says which node that is."""
    def applies(url: str, **extra: str) -> bool:
        env = {"SHOP_RUN_DIR": str(tmp_path), "AMQP_URL": url, "RABBITMQ_NODENAME": "", **extra}
        return local("broker_is_local && echo yes || echo no", env).strip() == "yes"

    assert applies("amqp://guest:guest@127.0.0.1:5672/shoptest_x") and applies("amqp://guest:guest@localhost/")
    assert not applies("amqp://guest:guest@127.0.0.1:25672/")
    assert applies("amqp://guest:guest@127.0.0.1:25672/", RABBITMQ_NODENAME="faults-node@localhost")
    assert not applies("amqp://guest:guest@rabbitmq.internal:5672/")


def test_defaults_are_the_contracts(tmp_path):
    env = {"SHOP_RUN_DIR": str(tmp_path)}
    for name in ("GATEWAY_PORT", "SMTP_PORT", "ADMIN_EMAIL", "ADMIN_PASSWORD", "SHOP_DB_PREFIX", "AMQP_URL", "SMTP_HOST"):
        env[name] = ""
    out = local('echo "$GATEWAY_PORT $SMTP_HOST $SMTP_PORT $ADMIN_EMAIL $ADMIN_PASSWORD $(database_url auth)"', env)
    assert out.split() == ["8080", "127.0.0.1", "1025", "admin@example.com", "admin-password", "postgresql://postgres@127.0.0.1:5432/auth"]


def test_down_stops_what_up_started_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, SHOP_RUN_DIR=str(run))
    stranger = subprocess.Popen(["sleep", "60"])  # not started by the runner
    try:
        local("start_process orders \"$LOG_DIR/orders.log\" sleep 60", {"SHOP_RUN_DIR": str(run)})
        ours = int((run / "pids/orders.pid").read_text().split()[0])
        # A pid file naming the stranger, as after a reboot gave our old pid to another program.
        (run / "pids/products.pid").write_text(f"{stranger.pid} 1 uvicorn products\n")

        done = subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert f"stopping orders (pid {ours})" in done.stdout
        assert "products" not in done.stdout
        assert stranger.poll() is None, "down killed a process it did not start"
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{ours}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{ours}")
        assert not list((run / "pids").iterdir())

        again = subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert again.returncode == 0 and "nothing to stop" in again.stdout
    finally:
        stranger.kill()
        stranger.wait()


def test_up_waits_for_every_replica_not_only_for_the_one_the_gateway_asks(tmp_path):
    """With two processes a service, the gateway answers a health check from whichever is alive: a replica
    that died while starting (its twin answering for it) must fail `make up`, with the end of its log."""
    run, site = tmp_path / "run", tmp_path / "site"
    (site / "api" / "products").mkdir(parents=True)
    (site / "api" / "products" / "health").write_text("ok")
    gateway, first, second = free_ports(3)
    env = {"SHOP_RUN_DIR": str(run)}
    serve = f"python3 -m http.server --bind 127.0.0.1 --directory {site}"
    try:
        local(f'start_process gateway "$LOG_DIR/gateway.log" {serve} {gateway}', env)
        local(f'start_process products "$LOG_DIR/products.log" {serve} {first}', env)
        local('start_process products-2 "$LOG_DIR/products-2.log" sh -c "echo cannot reach the broker; exit 3"', env)
        wait = [sys.executable, "deploy/local/stackctl.py", "wait",
                f"http://127.0.0.1:{gateway}", str(run), f"products={first}", f"products-2={second}", "--timeout", "20"]
        done = subprocess.run(wait, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout
        assert "products-2 stopped while starting" in done.stderr and "cannot reach the broker" in done.stderr

        local(f'start_process products-2 "$LOG_DIR/products-2.log" {serve} {second}', env)
        done = subprocess.run(wait, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "every process answers" in done.stdout
    finally:
        subprocess.run(["deploy/local/down.sh"], cwd=ROOT, env=dict(os.environ, **env), capture_output=True, timeout=60)


def free_ports(n: int) -> list[int]:
    """n distinct ports free now (all held open while choosing, so none is given twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
