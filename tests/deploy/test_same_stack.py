"""docker-compose.yml and deploy/k8s run the same stack as local mode: every service, route and setting."""

from __future__ import annotations

import importlib
import re

import pytest
from shop_events.registry import SERVICES as REGISTRY
from stack_files import ROOT, SERVICES, compose, container_env_names, find, local, local_env_names, manifests

TEMPLATE = (ROOT / "deploy" / "gateway" / "shop.conf.template").read_text()
PLACEHOLDERS = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", TEMPLATE))
# Paths differ by where the keys are mounted; the names are what must agree.


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_local_mode_passes_is_one_the_service_reads(service, tmp_path):
    settings = importlib.import_module(f"{service}.config").Settings
    known = set()
    for name, field in settings.model_fields.items():
        known.add(name.upper())
        if isinstance(field.validation_alias, str):
            known.add(field.validation_alias.upper())
    unread = local_env_names(service, tmp_path) - known
    assert not unread, f"local mode sets {unread} but {service}'s Settings has no such field"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_the_service_with_the_same_settings(service, tmp_path):
    spec = compose()["services"][service]
    assert spec["build"]["dockerfile"] == f"services/{service}/Dockerfile"
    assert spec["build"]["context"] == "."
    missing = local_env_names(service, tmp_path) - set(spec["environment"])
    assert not missing, f"compose's {service} lacks {missing}"
    assert spec["environment"][f"{service.upper()}_DATABASE_URL"].endswith(f"/{service}}}")


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_runs_an_api_and_a_worker_with_the_same_settings(service, tmp_path):
    wanted = local_env_names(service, tmp_path)
    for role, roles in (("api", "api"), ("worker", "consumers,relay")):
        deployment = find("Deployment", f"{service}-{role}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        missing = wanted - container_env_names(deployment)
        assert not missing, f"{service}-{role} lacks {missing}"
        assert {"name": "ROLES", "value": roles} in container["env"]
        assert container["image"].startswith(f"shop/{service}:")
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == f"/api/{service}/health"
        assert container["resources"]["requests"] and container["resources"]["limits"]
    service_spec = find("Service", service)["spec"]
    assert service_spec["selector"]["app.kubernetes.io/component"] == "api"


def test_the_gateway_routes_every_service_in_every_mode():
    for service in SERVICES:
        assert f"location ~ ^/api/{service}(/|$) {{ proxy_pass http://shop_{service}; }}" in TEMPLATE
    assert {f"{s.upper()}_UPSTREAM" for s in SERVICES} <= PLACEHOLDERS

    local_upstreams = local(" ".join(f"service_port {s};" for s in SERVICES)).split()
    assert local_upstreams == [str(s.port) for s in REGISTRY]

    gateway = compose()["services"]["gateway"]
    assert set(gateway["environment"]) == PLACEHOLDERS, "compose's gateway must set exactly the template's settings"
    assert "./deploy/gateway/shop.conf.template:/etc/nginx/templates/shop.conf.template:ro" in gateway["volumes"]
    for service in SERVICES:
        assert gateway["environment"][f"{service.upper()}_UPSTREAM"] == f"{service}:8000"

    deployment = find("Deployment", "gateway")
    assert container_env_names(deployment) == PLACEHOLDERS
    assert find("ConfigMap", "shop-gateway")["data"]["shop.conf.template"] == TEMPLATE
    k8s_env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for service in SERVICES:
        assert k8s_env[f"{service.upper()}_UPSTREAM"] == f"{service}:8000"
        assert find("Service", service)["spec"]["ports"][0]["port"] == 8000


def test_every_mode_makes_the_same_databases(tmp_path):
    urls = local(" ".join(f"database_url {s};" for s in SERVICES), {"SHOP_RUN_DIR": str(tmp_path)}).split()
    names = [u.rsplit("/", 1)[1] for u in urls]
    assert names == [s.database for s in REGISTRY]
    init = (ROOT / "deploy" / "postgres" / "init-databases.sql").read_text()
    assert re.findall(r"CREATE DATABASE (\w+);", init) == [s.database for s in REGISTRY]
    assert find("ConfigMap", "postgres-init")["data"]["init-databases.sql"] == init
    secrets = find("Secret", "shop-secrets")["stringData"]
    for service in SERVICES:
        assert secrets[f"{service.upper()}_DATABASE_URL"].endswith(f"@postgres:5432/{service}")


def test_every_secret_and_setting_a_container_asks_for_exists():
    config = find("ConfigMap", "shop-config")["data"]
    secrets = find("Secret", "shop-secrets")["stringData"]
    for doc in manifests():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config, (doc["metadata"]["name"], env["name"])
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets, (doc["metadata"]["name"], env["name"])


def test_compose_uses_the_official_images_pinned():
    images = {name: spec.get("image", "") for name, spec in compose()["services"].items()}
    assert images["rabbitmq"].startswith("rabbitmq:3.13")
    assert images["postgres"].startswith("postgres:16")
    assert images["gateway"].startswith("nginx:1.27")
    for name, image in images.items():
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_make_up_passes_the_contract_settings_through_in_docker_mode():
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("ADMIN_EMAIL", "ADMIN_PASSWORD", "GATEWAY_PORT", "AMQP_URL", "SMTP_HOST", "SMTP_PORT"):
        assert f"${{{name}:-" in text, name
    for service in SERVICES:
        assert f"${{{service.upper()}_DATABASE_URL:-" in text
