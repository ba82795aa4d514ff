"""Least privilege in every way the stack runs: local mode, docker-compose.yml and the Kubernetes manifests give
each service its own database role and broker user, from the same definitions (deploy/broker, deploy/postgres)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from shop_events.registry import NAMES as SERVICES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "broker"))
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

import definitions as broker  # noqa: E402
from stack_files import compose, find, local  # noqa: E402


def test_the_compose_definitions_file_is_what_definitions_py_writes():
    done = subprocess.run([sys.executable, "deploy/broker/definitions.py", "compose", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_service_user_reaches_only_its_own_queues():
    grants = {kind: re.compile(regex) for kind, regex in broker.permissions("orders").items()}
    for own in ("orders.background", "orders.immediate.retry.3", "orders.background.dlq"):
        assert all(grants[kind].match(own) for kind in ("configure", "write", "read"))
    for foreign in ("products.background", "products.background.dlq", "products.settle", "ordersx.background",
                    "amq.gen-x", "amq.default", "shop.eventsx"):
        assert not any(grant.match(foreign) for grant in grants.values()), foreign
    assert grants["write"].match("shop.events") and grants["read"].match("shop.events")
    assert grants["configure"].match("orders.settle") and not grants["configure"].match("shop.events")
    topic = re.compile(broker.topic_permission("orders")["write"])
    assert topic.match("order.created") and topic.match("payment.failed") and not topic.match("user.banned")
    assert not re.compile(broker.topic_permission("analytics")["write"]).match("order.created")
    assert not re.compile(broker.permissions("analytics")["write"]).match("shop.events")


@pytest.mark.parametrize("service", SERVICES)
def test_every_mode_connects_each_service_as_its_own_role_and_user(service, tmp_path):
    # local mode
    out = local(f"mkdir -p $RUN_DIR/broker && echo pw > $RUN_DIR/broker/{service}.password && service_env {service}",
                {"SHOP_RUN_DIR": str(tmp_path), "SHOP_POSTGRES_SOCKET_DIR": ""})  # TCP: the socket's URL is tested apart
    env = dict(line.split("=", 1) for line in out.splitlines() if line)
    assert env["AMQP_URL"].startswith(f"amqp://shop_{service}:pw@")
    assert env[f"{service.upper()}_DATABASE_URL"] == f"postgresql://shop_{service}@127.0.0.1:5432/{service}"
    # compose
    compose_env = compose()["services"][service]["environment"]
    assert f"amqp://shop_{service}:shop-{service}-dev@rabbitmq:5672/" in compose_env["AMQP_URL"]
    assert f"postgresql://shop_{service}@postgres:5432/{service}" in compose_env[f"{service.upper()}_DATABASE_URL"]
    compose_users = {u["name"]: u["password"] for u in json.loads((ROOT / "deploy/broker/definitions.json").read_text())["users"]}
    assert compose_users[f"shop_{service}"] == f"shop-{service}-dev"
    # Kubernetes: the URL's password is the one the broker and the database were given
    secrets = find("Secret", "shop-secrets")["stringData"]
    k8s_users = {u["name"]: u["password"] for u in json.loads(find("Secret", "rabbitmq-definitions")["stringData"]["definitions.json"])["users"]}
    # every node of the three-node broker, each as the service's own user
    password = k8s_users[f"shop_{service}"]
    assert secrets[f"{service.upper()}_AMQP_URL"].split(",") == [
        f"amqp://shop_{service}:{password}@rabbitmq-{n}.rabbitmq-nodes:5672/?heartbeat=5" for n in range(3)
    ]
    assert secrets[f"{service.upper()}_DATABASE_URL"] == f"postgresql://shop_{service}:{secrets[f'{service.upper()}_DB_PASSWORD']}@postgres:5432/{service}"
    for role in ("api", "worker"):
        (container,) = find("Deployment", f"{service}-{role}")["spec"]["template"]["spec"]["containers"]
        amqp = next(e for e in container["env"] if e["name"] == "AMQP_URL")
        assert amqp["valueFrom"]["secretKeyRef"]["key"] == f"{service.upper()}_AMQP_URL"
    # the databases' init script, in compose and Kubernetes
    init = (ROOT / "deploy/postgres/init-databases.sql").read_text()
    assert f"CREATE ROLE shop_{service} LOGIN;" in init
    assert f"ALTER DATABASE {service} OWNER TO shop_{service};" in init
    assert f"REVOKE CONNECT, TEMPORARY ON DATABASE {service} FROM PUBLIC;" in init
    assert f'ALTER ROLE shop_{service} PASSWORD' in find("ConfigMap", "postgres-init")["data"]["role-passwords.sh"]


def test_the_broker_loads_the_definitions_in_compose_and_kubernetes():
    volumes = compose()["services"]["rabbitmq"]["volumes"]
    assert "./deploy/broker/definitions.json:/etc/rabbitmq/definitions.json:ro" in volumes
    assert "./deploy/broker/rabbitmq.conf:/etc/rabbitmq/conf.d/20-shop.conf:ro" in volumes
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (ROOT / "deploy/broker/rabbitmq.conf").read_text()
    assert find("ConfigMap", "rabbitmq-config")["data"]["20-shop.conf"] == (ROOT / "deploy/broker/rabbitmq.conf").read_text()
    (container,) = find("StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/rabbitmq/definitions.json", "/etc/rabbitmq/conf.d/20-shop.conf"} <= mounts


def granted(definitions: dict, user_of: dict[str, str]) -> dict[str, dict]:
    """Per service: the vhost permission regexes and the topic permission its user was given."""
    by_user = {p["user"]: p for p in definitions["permissions"]}
    topics = {t["user"]: t for t in definitions["topic_permissions"]}
    return {
        service: {
            "configure": by_user[user]["configure"], "write": by_user[user]["write"], "read": by_user[user]["read"],
            "topic": (topics[user]["exchange"], topics[user]["write"], topics[user]["read"]),
        }
        for service, user in user_of.items()
    }


def rabbitmqctl_json(*args: str) -> list[dict]:
    done = subprocess.run(["rabbitmqctl", "-q", *args, "--formatter", "json"], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_compose_and_kubernetes_grant_each_user_exactly_what_local_mode_granted(stack):
    """Local mode as the broker holds it now (the security stack's vhost), against the definitions compose and
    the cluster load at their broker's start: the same regexes per service, and no other user but the admin."""
    local_grants = granted(
        {"permissions": rabbitmqctl_json("list_permissions", "-p", stack.vhost),
         "topic_permissions": rabbitmqctl_json("list_topic_permissions", "-p", stack.vhost)},
        {s: f"shop_{stack.prefix}{s}" for s in SERVICES},
    )
    compose_definitions = json.loads((ROOT / "deploy/broker/definitions.json").read_text())
    k8s_definitions = json.loads(find("Secret", "rabbitmq-definitions")["stringData"]["definitions.json"])
    for mode, definitions in (("compose", compose_definitions), ("kubernetes", k8s_definitions)):
        assert granted(definitions, {s: f"shop_{s}" for s in SERVICES}) == local_grants, mode
        users = {p["user"] for p in definitions["permissions"]} | {t["user"] for t in definitions["topic_permissions"]}
        assert users == {"shop"} | {f"shop_{s}" for s in SERVICES}, (mode, users)  # "shop": the management page's admin
        assert {p["vhost"] for p in definitions["permissions"]} == {"/"}, mode
    # and they are the regexes test_a_service_user_reaches_only_its_own_queues proves narrow
    for service in SERVICES:
        topic = broker.topic_permission(service)
        assert local_grants[service] == {**broker.permissions(service), "topic": (topic["exchange"], topic["write"], topic["read"])}
