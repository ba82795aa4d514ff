"""Writes the Kubernetes manifests in this folder. Edit this script, not the YAML, then run it (or
deploy/generate.py, which runs it after the files it copies in; the services come from shop_events/registry.py):

    .venv/bin/python deploy/k8s/render.py           (rewrite the manifests)
    .venv/bin/python deploy/k8s/render.py --check   (exit 1 when a manifest differs from what it would write)

The gateway's nginx template and the database init script are copied in verbatim, so the cluster runs the
same gateway and databases as local mode and docker-compose.yml. tests/deploy checks both.
"""

import json
import pathlib
import sys

import yaml
from shop_events.registry import SERVICES as REGISTRY

root = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root / "deploy/broker"))
import definitions as broker  # noqa: E402 - the broker users and permissions, one source for every mode
out = root / "deploy/k8s"
files: dict[str, str] = {}
SERVICES = [s.name for s in REGISTRY]
DATABASES = {s.name: s.database for s in REGISTRY}
DB_ROLES = {s.name: s.role for s in REGISTRY}
HEADER = "# generated from shop_events/registry.py by deploy/generate.py; do not edit"
NS = "shop"

class Literal(str): pass
def lit(dumper, data): return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
yaml.add_representer(Literal, lit)
def dump(docs, header):
    return HEADER + "\n" + header.rstrip() + "\n" + "".join("---\n" + yaml.dump(d, sort_keys=False, width=120) for d in docs)

def labels(name, component):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "shop"}

def secret_env(name, key=None):
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": key or name}}}

def deployment(svc, component, roles, replicas, cpu, memory):
    env = [
        {"name": "ROLES", "value": roles},
        {"name": "JWT_PUBLIC_KEY_PATH", "value": "/run/shop/keys/jwt_public.pem"},
        secret_env("AMQP_URL", f"{svc.upper()}_AMQP_URL"),  # its own broker user
        secret_env(f"{svc.upper()}_DATABASE_URL"),  # its own database role
    ]
    keys = [{"key": "jwt_public.pem", "path": "jwt_public.pem"}]
    if svc == "auth":
        env += [
            {"name": "JWT_PRIVATE_KEY_PATH", "value": "/run/shop/keys/jwt_private.pem"},
            {"name": "ADMIN_EMAIL", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "ADMIN_EMAIL"}}},
            secret_env("ADMIN_PASSWORD"),
        ]
        keys.append({"key": "jwt_private.pem", "path": "jwt_private.pem"})
    if svc == "notifications":
        env += [
            {"name": "SMTP_HOST", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "SMTP_HOST"}}},
            {"name": "SMTP_PORT", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "SMTP_PORT"}}},
        ]
    env.append({"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "LOG_LEVEL"}}})
    probe = lambda **kw: {"httpGet": {"path": f"/api/{svc}/health", "port": "http"}, **kw}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{svc}-{component}", "namespace": NS, "labels": labels(svc, component)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": svc, "app.kubernetes.io/component": component}},
            "template": {
                "metadata": {"labels": labels(svc, component)},
                "spec": {
                    # No Docker-link style variables (AUTH_PORT=tcp://...) in the environment the settings read.
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                    "containers": [{
                        "name": svc,
                        "image": f"shop/{svc}:0.1.0",
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "env": env,
                        "startupProbe": probe(periodSeconds=2, failureThreshold=60),
                        "readinessProbe": probe(periodSeconds=5, failureThreshold=2),
                        "livenessProbe": probe(periodSeconds=10, timeoutSeconds=3, failureThreshold=6),
                        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": "1", "memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [
                            {"name": "jwt-keys", "mountPath": "/run/shop/keys", "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "jwt-keys", "secret": {"secretName": "shop-jwt", "items": keys}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }

for svc in SERVICES:
    docs = [
        deployment(svc, "api", "api", 2, "100m", "128Mi"),
        deployment(svc, "worker", "consumers,relay", 1, "100m", "128Mi"),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": svc, "namespace": NS, "labels": labels(svc, "api")},
         "spec": {"selector": {"app.kubernetes.io/name": svc, "app.kubernetes.io/component": "api"},
                  "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}},
    ]
    header = (f"# {svc}: the API (ROLES=api, behind the gateway, scaled by replicas) and the worker\n"
              f"# (ROLES=consumers,relay: its queue consumers and outbox relay, scaled on queue depth). Same image.")
    files[f"30-{svc}.yaml"] = (dump(docs, header))

template = (root / "deploy/gateway/shop.conf.template").read_text()
# The operations page's static files (deploy/ops), mounted where the template's relative `alias ops/` points.
ops_files = {path.name: Literal(path.read_text()) for path in sorted((root / "deploy/ops").iterdir()) if path.is_file()}
upstreams = [{"name": f"{s.upper()}_UPSTREAM", "value": f"{s}:8000"} for s in SERVICES]
gateway = [
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "shop-gateway", "namespace": NS, "labels": labels("gateway", "gateway")},
     "data": {"shop.conf.template": Literal(template)}},
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "shop-ops-page", "namespace": NS, "labels": labels("gateway", "gateway")},
     "data": ops_files},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "gateway", "namespace": NS, "labels": labels("gateway", "gateway")},
     "spec": {"replicas": 2,
              "selector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}},
              "template": {"metadata": {"labels": labels("gateway", "gateway")},
                           # No service-link variables: GATEWAY_PORT=tcp://... would reach the template.
                           "spec": {"enableServiceLinks": False,
                                    "containers": [{
                               "name": "nginx", "image": "nginx:1.27.3",
                               "ports": [{"name": "http", "containerPort": 8080}],
                               "env": [{"name": "GATEWAY_PORT", "value": "8080"},
                                       {"name": "GATEWAY_RATE_LIMIT", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "GATEWAY_RATE_LIMIT"}}},
                                       *({"name": key, "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": key}}}
                                         for key in ("GATEWAY_RATE_BURST", "GATEWAY_LOGIN_RATE_LIMIT", "GATEWAY_LOGIN_RATE_BURST")),
                                       *upstreams],
                               "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
                               "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
                               "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
                               "volumeMounts": [{"name": "templates", "mountPath": "/etc/nginx/templates", "readOnly": True},
                                                {"name": "ops-page", "mountPath": "/etc/nginx/ops", "readOnly": True}],
                           }],
                           "volumes": [{"name": "templates", "configMap": {"name": "shop-gateway"}},
                                       {"name": "ops-page", "configMap": {"name": "shop-ops-page"}}]}}}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "gateway", "namespace": NS, "labels": labels("gateway", "gateway")},
     # Local: the load balancer's traffic goes straight to a node's own gateway pod, so nginx sees each client's
     # address (Cluster would hand it the node's), which the per-address limits are keyed by.
     "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app.kubernetes.io/name": "gateway"},
              "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
]
files["40-gateway.yaml"] = (dump(gateway,
    "# The gateway: the official nginx image renders deploy/gateway/shop.conf.template (copied verbatim into the\n"
    "# ConfigMap below; a test keeps them equal) with the settings in its environment. The only public entry."))

init_sql = (root / "deploy/postgres/init-databases.sql").read_text()
# The image runs *.sh after *.sql: each service's role gets its password from the Secret.
role_passwords = "\n".join(
    ["# Each service's database role gets the password its *_DATABASE_URL carries (Secret shop-secrets).", "set -e"]
    + [f'echo "ALTER ROLE {DB_ROLES[s]} PASSWORD :\'pw\';" | psql -v ON_ERROR_STOP=1 -U postgres -v pw="${s.upper()}_DB_PASSWORD"' for s in SERVICES]
) + "\n"
postgres = [
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "postgres-init", "namespace": NS, "labels": labels("postgres", "database")},
     "data": {"init-databases.sql": Literal(init_sql), "role-passwords.sh": Literal(role_passwords)}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet",
     "metadata": {"name": "postgres", "namespace": NS, "labels": labels("postgres", "database")},
     "spec": {"serviceName": "postgres", "replicas": 1,
              "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
              "template": {"metadata": {"labels": labels("postgres", "database")},
                           "spec": {"enableServiceLinks": False, "containers": [{
                               "name": "postgres", "image": "postgres:16.6",
                               "ports": [{"name": "postgres", "containerPort": 5432}],
                               "env": [secret_env("POSTGRES_PASSWORD"),
                                       {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                       *[secret_env(f"{s.upper()}_DB_PASSWORD") for s in SERVICES]],
                               "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 5},
                               "livenessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 10, "failureThreshold": 6},
                               "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                               "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                                {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True}],
                           }],
                           "volumes": [{"name": "init", "configMap": {"name": "postgres-init"}}]}},
              "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "postgres", "namespace": NS, "labels": labels("postgres", "database")},
     "spec": {"selector": {"app.kubernetes.io/name": "postgres"}, "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]}},
]
files["20-postgres.yaml"] = (dump(postgres,
    "# PostgreSQL: one server with one database per service (deploy/postgres/init-databases.sql, copied verbatim).\n"
    "# To use a managed PostgreSQL instead, leave this file out and point the *_DATABASE_URL secrets at it."))

# The users and permissions of deploy/broker/definitions.py; the passwords must match the *_AMQP_URL secrets.
broker_passwords = {s: f"change-me-{s}-broker" for s in SERVICES}
broker_definitions = broker.definitions("/", broker_passwords)
broker_definitions["users"].insert(0, {"name": "shop", "password": "change-me-rabbitmq", "tags": "administrator"})
broker_definitions["permissions"].insert(0, {"user": "shop", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"})
# RabbitMQ as a three-node cluster: a StatefulSet whose nodes find each other with the Kubernetes peer-discovery
# plugin (through the headless Service rabbitmq-nodes), quorum queues replicated on all three, and a
# PodDisruptionBudget that never lets a voluntary eviction take more than one node, so a quorum always stays.
BROKER_NODES = 3
NODES_SERVICE = "rabbitmq-nodes"
NODE_DNS = f"{NODES_SERVICE}.{NS}.svc.cluster.local"
CLUSTER_CONF = f"""# The three nodes form one cluster through the Kubernetes API (rabbitmq_peer_discovery_k8s), by their stable
# names rabbitmq-<n>.{NODE_DNS}. pause_minority: a node cut off from the other two pauses and drops its
# clients, who fail over to the majority, where the quorum queues elect new leaders; no side writes alone.
cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s
cluster_formation.k8s.host = kubernetes.default.svc.cluster.local
cluster_formation.k8s.address_type = hostname
cluster_formation.k8s.service_name = {NODES_SERVICE}
cluster_formation.k8s.hostname_suffix = .{NODE_DNS}
cluster_formation.node_cleanup.only_log_warning = true
cluster_partition_handling = pause_minority
queue_leader_locator = balanced
"""
broker_urls = {s: ",".join(f"amqp://shop_{s}:{broker_passwords[s]}@rabbitmq-{n}.{NODES_SERVICE}:5672/?heartbeat=5"
                           for n in range(BROKER_NODES)) for s in SERVICES}
rabbit = [
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "rabbitmq-config", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "data": {"20-shop.conf": Literal((root / "deploy/broker/rabbitmq.conf").read_text()),
              "30-cluster.conf": Literal(CLUSTER_CONF),
              "enabled_plugins": "[rabbitmq_management,rabbitmq_peer_discovery_k8s].\n"}},
    {"apiVersion": "v1", "kind": "Secret",
     "metadata": {"name": "rabbitmq-definitions", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "type": "Opaque",
     "stringData": {"definitions.json": Literal(json.dumps(broker_definitions, indent=2) + "\n")}},
    # Peer discovery reads the endpoints of rabbitmq-nodes from the Kubernetes API.
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "rabbitmq", "namespace": NS, "labels": labels("rabbitmq", "broker")}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
     "metadata": {"name": "rabbitmq-peer-discovery", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "rules": [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
               {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "rabbitmq-peer-discovery", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rabbitmq-peer-discovery"},
     "subjects": [{"kind": "ServiceAccount", "name": "rabbitmq", "namespace": NS}]},
    {"apiVersion": "apps/v1", "kind": "StatefulSet",
     "metadata": {"name": "rabbitmq", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "spec": {"serviceName": NODES_SERVICE, "replicas": BROKER_NODES, "podManagementPolicy": "Parallel",
              "selector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq"}},
              "template": {"metadata": {"labels": labels("rabbitmq", "broker")},
                           "spec": {"enableServiceLinks": False, "serviceAccountName": "rabbitmq",
                           "terminationGracePeriodSeconds": 120,  # a node hands its queue leaderships over first
                           # one node a machine where it can: a machine lost takes one replica, not a quorum
                           "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                               "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                               "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq"}}}}]}},
                           "containers": [{
                               "name": "rabbitmq", "image": "rabbitmq:3.13.7-management",
                               "ports": [{"name": "amqp", "containerPort": 5672}, {"name": "management", "containerPort": 15672},
                                         {"name": "epmd", "containerPort": 4369}, {"name": "cluster", "containerPort": 25672}],
                               "env": [{"name": "RABBITMQ_DEFAULT_USER", "value": "shop"}, secret_env("RABBITMQ_DEFAULT_PASS"),
                                       secret_env("RABBITMQ_ERLANG_COOKIE"),
                                       {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                       {"name": "RABBITMQ_USE_LONGNAME", "value": "true"},
                                       {"name": "RABBITMQ_NODENAME", "value": f"rabbit@$(MY_POD_NAME).{NODE_DNS}"},
                                       {"name": "RABBITMQ_ENABLED_PLUGINS_FILE", "value": "/etc/rabbitmq/enabled_plugins"}],
                               "readinessProbe": {"exec": {"command": ["rabbitmq-diagnostics", "-q", "check_port_connectivity"]}, "periodSeconds": 10, "timeoutSeconds": 10},
                               "livenessProbe": {"exec": {"command": ["rabbitmq-diagnostics", "-q", "ping"]}, "periodSeconds": 30, "timeoutSeconds": 15, "failureThreshold": 4},
                               # a node stopped by a rollout or a drain hands its leaderships over, then stops
                               "lifecycle": {"preStop": {"exec": {"command": ["rabbitmq-upgrade", "drain"]}}},
                               "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                               "volumeMounts": [{"name": "data", "mountPath": "/var/lib/rabbitmq"},
                                                {"name": "definitions", "mountPath": "/etc/rabbitmq/definitions.json", "subPath": "definitions.json", "readOnly": True},
                                                {"name": "config", "mountPath": "/etc/rabbitmq/conf.d/20-shop.conf", "subPath": "20-shop.conf", "readOnly": True},
                                                {"name": "config", "mountPath": "/etc/rabbitmq/conf.d/30-cluster.conf", "subPath": "30-cluster.conf", "readOnly": True},
                                                {"name": "config", "mountPath": "/etc/rabbitmq/enabled_plugins", "subPath": "enabled_plugins", "readOnly": True}],
                           }],
                           "volumes": [{"name": "definitions", "secret": {"secretName": "rabbitmq-definitions"}},
                                       {"name": "config", "configMap": {"name": "rabbitmq-config"}}]}},
              "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}]}},
    # Each node by its own name, ready or not (the nodes must find each other before any is ready).
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": NODES_SERVICE, "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app.kubernetes.io/name": "rabbitmq"},
              "ports": [{"name": "amqp", "port": 5672, "targetPort": "amqp"}, {"name": "epmd", "port": 4369, "targetPort": "epmd"},
                        {"name": "cluster", "port": 25672, "targetPort": "cluster"}]}},
    # Any ready node, for tools (the services are given every node: AMQP_URL lists them).
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "rabbitmq", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "spec": {"selector": {"app.kubernetes.io/name": "rabbitmq"},
              "ports": [{"name": "amqp", "port": 5672, "targetPort": "amqp"}, {"name": "management", "port": 15672, "targetPort": "management"}]}},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
     "metadata": {"name": "rabbitmq", "namespace": NS, "labels": labels("rabbitmq", "broker")},
     "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq"}}}},
]
files["21-rabbitmq.yaml"] = (dump(rabbit,
    "# RabbitMQ: a three-node cluster (peer discovery through the Kubernetes API, pause_minority), quorum queues and\n"
    "# parking streams replicated on every node, at most one node away at a time for a voluntary disruption."))

config = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"app.kubernetes.io/part-of": "shop"}}},
]
files["00-namespace.yaml"] = (dump(config, "# Everything of the shop lives in this namespace."))

settings = [
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "shop-config", "namespace": NS, "labels": {"app.kubernetes.io/part-of": "shop"}},
     "data": {"ADMIN_EMAIL": "admin@example.com", "SMTP_HOST": "smtp-relay", "SMTP_PORT": "25", "LOG_LEVEL": "INFO",
              "GATEWAY_RATE_LIMIT": "500", "GATEWAY_RATE_BURST": "1000",
              "GATEWAY_LOGIN_RATE_LIMIT": "1", "GATEWAY_LOGIN_RATE_BURST": "5"}},
    {"apiVersion": "v1", "kind": "Secret",
     "metadata": {"name": "shop-secrets", "namespace": NS, "labels": {"app.kubernetes.io/part-of": "shop"}},
     "type": "Opaque",
     "stringData": {
         "ADMIN_PASSWORD": "change-me-admin-password",
         "RABBITMQ_DEFAULT_PASS": "change-me-rabbitmq",
         "POSTGRES_PASSWORD": "change-me-postgres",
         "GRAFANA_ADMIN_PASSWORD": "change-me-grafana",
         # Each service its own broker user and database role (deploy/broker, deploy/postgres); the broker's
         # passwords are also in the Secret rabbitmq-definitions (21-rabbitmq.yaml): change both.
         # Every node of the cluster: a service connects to any that answers and fails over (shop_events/nodes.py).
         **{f"{s.upper()}_AMQP_URL": broker_urls[s] for s in SERVICES},
         "RABBITMQ_ERLANG_COOKIE": "change-me-erlang-cookie",
         **{f"{s.upper()}_DB_PASSWORD": f"change-me-{s}-db" for s in SERVICES},
         **{f"{s.upper()}_DATABASE_URL": f"postgresql://{DB_ROLES[s]}:change-me-{s}-db@postgres:5432/{DATABASES[s]}" for s in SERVICES},
     }},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "smtp-relay", "namespace": NS, "labels": {"app.kubernetes.io/part-of": "shop"}},
     "spec": {"type": "ExternalName", "externalName": "smtp.example.com"}},
]
files["10-settings.yaml"] = (dump(settings,
    "# Settings, with the names local mode uses. Replace every change-me before applying (or manage the Secret\n"
    "# elsewhere). smtp-relay is an external SMTP relay: set its externalName to yours. The JWT key pair is\n"
    "# a Secret made once by hand (README: Kubernetes):\n"
    "#   python deploy/keys/generate.py keys/ && kubectl -n shop create secret generic shop-jwt --from-file=keys/"))


# Prometheus finds every api and worker pod (a worker's counters are its own) and names the job after the service,
# as deploy/prometheus/prometheus.yml does in compose; alerts.yml and the Grafana files are copied in verbatim.
prometheus_config = {
    "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
    "rule_files": ["/etc/prometheus/alerts.yml"],
    "scrape_configs": [{
        "job_name": "shop",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NS]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component", "__meta_kubernetes_pod_container_port_name"],
             "regex": "(api|worker);http", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "job"},
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "__metrics_path__",
             "replacement": "/api/$1/metrics"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }],
}
grafana_files = {
    "grafana-datasources": {"prometheus.yml": root / "deploy/grafana/provisioning/datasources/prometheus.yml"},
    "grafana-dashboard-providers": {"shop.yml": root / "deploy/grafana/provisioning/dashboards/shop.yml"},
    "grafana-dashboards": {"shop.json": root / "deploy/grafana/dashboards/shop.json"},
}
def config_map(name, data, component):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS, "labels": labels(name, component)},
            "data": {key: Literal(value) for key, value in data.items()}}
def monitoring_deployment(name, image, port, args, mounts, env=(), account=None):
    spec = {"containers": [{
        "name": name, "image": image, "args": list(args), "env": list(env),
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "volumeMounts": [{"name": volume, "mountPath": path, "readOnly": volume != "data"} for volume, path, _ in mounts],
    }], "volumes": [{"name": volume, **source} for volume, _, source in mounts]}
    if account:
        spec["serviceAccountName"] = account
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS, "labels": labels(name, "monitoring")},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                  "template": {"metadata": {"labels": labels(name, "monitoring")}, "spec": spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS, "labels": labels(name, "monitoring")},
         "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "http", "port": port, "targetPort": "http"}]}},
    ]
monitoring = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prometheus", "namespace": NS, "labels": labels("prometheus", "monitoring")}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
     "metadata": {"name": "prometheus", "namespace": NS, "labels": labels("prometheus", "monitoring")},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "prometheus", "namespace": NS, "labels": labels("prometheus", "monitoring")},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "prometheus"},
     "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": NS}]},
    config_map("prometheus-config", {"prometheus.yml": yaml.safe_dump(prometheus_config, sort_keys=False, width=120),
                                     "alerts.yml": (root / "deploy/prometheus/alerts.yml").read_text()}, "monitoring"),
    *monitoring_deployment("prometheus", "prom/prometheus:v2.53.3", 9090,
                           ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
                           [("config", "/etc/prometheus", {"configMap": {"name": "prometheus-config"}}),
                            ("data", "/prometheus", {"emptyDir": {}})], account="prometheus"),
    *[config_map(name, {key: path.read_text() for key, path in data.items()}, "monitoring") for name, data in grafana_files.items()],
    *monitoring_deployment("grafana", "grafana/grafana:11.4.0", 3000, [],
                           [("datasources", "/etc/grafana/provisioning/datasources", {"configMap": {"name": "grafana-datasources"}}),
                            ("providers", "/etc/grafana/provisioning/dashboards", {"configMap": {"name": "grafana-dashboard-providers"}}),
                            ("dashboards", "/var/lib/grafana/dashboards", {"configMap": {"name": "grafana-dashboards"}}),
                            ("data", "/var/lib/grafana", {"emptyDir": {}})],
                           env=[secret_env("GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD")]),
]
files["50-monitoring.yaml"] = (dump(monitoring,
    "# Prometheus (every api and worker pod, found through the Kubernetes API; deploy/prometheus/alerts.yml) and\n"
    "# Grafana with the on-call dashboard (deploy/grafana). Their data is an emptyDir: give them volumes to keep it."))

if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = [name for name, text in files.items() if not (out / name).exists() or (out / name).read_text() != text]
        if stale:
            raise SystemExit(f"out of date, run deploy/k8s/render.py: {', '.join(stale)}")
    else:
        for name, text in files.items():
            (out / name).write_text(text)
