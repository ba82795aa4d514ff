"""The Kubernetes manifests are valid for the Kubernetes API (offline schemas) and up to date with their script."""

from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from stack_files import K8S, ROOT

KUBERNETES_VERSION = "1.30.0"


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name} holds no resource"
    for doc in docs:
        # strict: an unknown or misspelt field is an error, not silently ignored by the cluster
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_is_refused():
    """The check itself can fail: a typo that a cluster would silently drop."""
    deployment = yaml.safe_load((K8S / "30-orders.yaml").read_text().split("---\n")[1])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_manifests_are_what_their_script_writes():
    done = subprocess.run([sys.executable, "deploy/k8s/render.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_broker_is_a_three_node_cluster_that_keeps_a_quorum_and_services_know_every_node():
    docs = [d for d in yaml.safe_load_all((K8S / "21-rabbitmq.yaml").read_text()) if d]
    [nodes] = [d for d in docs if d["kind"] == "StatefulSet"]
    [budget] = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert nodes["spec"]["replicas"] == 3
    assert budget["spec"]["maxUnavailable"] == 1  # two of three stay: a quorum
    assert budget["spec"]["selector"] == nodes["spec"]["selector"]
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert "rabbit_peer_discovery_k8s" in config["data"]["30-cluster.conf"]
    assert "cluster_partition_handling = pause_minority" in config["data"]["30-cluster.conf"]
    secrets = [d for d in yaml.safe_load_all((K8S / "10-settings.yaml").read_text()) if d and d["kind"] == "Secret"]
    urls = {k: v for d in secrets for k, v in d["stringData"].items() if k.endswith("_AMQP_URL")}
    assert urls
    for url in urls.values():
        assert [u.split("@")[1].split(":")[0] for u in url.split(",")] == [f"rabbitmq-{n}.rabbitmq-nodes" for n in range(3)]


def test_images_are_pinned():
    for doc in (d for path in K8S.glob("*.yaml") for d in yaml.safe_load_all(path.read_text()) if d):
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            name, _, tag = container["image"].rpartition(":")
            assert name and tag and tag != "latest" and any(c.isdigit() for c in tag), container["image"]
