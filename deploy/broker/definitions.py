"""The broker's users and permissions: one RabbitMQ user per service, allowed only its own queues.

    python deploy/broker/definitions.py local RUN_DIR VHOST PREFIX   (make up: apply to the local broker)
    python deploy/broker/definitions.py compose                      (rewrite deploy/broker/definitions.json)
    python deploy/broker/definitions.py compose --check              (exit 1 when definitions.json is stale)

Each service's user (`shop_<prefix><service>`) may, in the stack's vhost:
- configure (declare, delete) only its own queues and its own settle exchange, `<service>.*`; not
  `shop.events`, which these definitions make and services only check (a passive declare);
- write to its own queues and settle exchange (its retries, parking, replays and the wait queues'
  dead-lettering go through `<service>.settle`, never the default exchange, which would reach every
  queue of the vhost by name) and, for a producer, to `shop.events`;
- read (consume, bind from) only its own queues and exchange, and `shop.events`: reading its parking streams
  (`<service>.<lane>.dlq` and their replay logs `.dlq.replayed`) for the operations page is consuming them;
- read `shop.history`, the stream that keeps every event (rebuilds and late joiners replay it), but not
  write to it: only shop.events' binding fills it;
- publish on `shop.events` only the routing keys of the events it produces (a topic permission):
  orders can't publish `user.banned`, and notifications and analytics can't publish at all.
The runner applies them with `rabbitmqctl import_definitions` (idempotent); compose and Kubernetes load the
same definitions at the broker's start. The catalogue (shared/events) is the one source of who produces what.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

from shop_events.catalogue import CATALOGUE
from shop_events.settings import BusSettings
from shop_events.topology import EVERY_KEY, EXCHANGE, HISTORY, SERVICES, history_arguments, upgrade_policies

HERE = Path(__file__).resolve().parent
COMPOSE_FILE = HERE / "definitions.json"
_BUS = BusSettings()


def user_name(service: str, prefix: str = "") -> str:
    return f"shop_{prefix}{service}"


def permissions(service: str) -> dict[str, str]:
    own = re.escape(service) + r"\..*"
    exchange = re.escape(EXCHANGE)
    return {
        "configure": f"^({own})$",
        "write": f"^({own}|{exchange})$" if produced_keys(service) else f"^({own})$",
        "read": f"^({own}|{exchange}|{re.escape(HISTORY)})$",
    }


def produced_keys(service: str) -> list[str]:
    return sorted(spec.routing_key for spec in CATALOGUE.values() if spec.producer == service)


def topic_permission(service: str) -> dict[str, str]:
    keys = produced_keys(service)
    # "^$" matches no routing key: a service that produces nothing publishes nothing.
    write = "^(" + "|".join(re.escape(k) for k in keys) + ")$" if keys else "^$"
    return {"exchange": EXCHANGE, "write": write, "read": ".*"}


def definitions(vhost: str, passwords: dict[str, str], prefix: str = "") -> dict:
    users, grants, topics = [], [], []
    for service in SERVICES:
        name = user_name(service, prefix)
        users.append({"name": name, "password": passwords[service], "tags": ""})
        grants.append({"user": name, "vhost": vhost, **permissions(service)})
        topics.append({"user": name, "vhost": vhost, **topic_permission(service)})
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": grants,
        "topic_permissions": topics,
        "policies": [{"vhost": vhost, **policy} for policy in upgrade_policies(SERVICES)],
        # Declared once here, so that it exists before any service; services declare it again, the same.
        "exchanges": [{"name": EXCHANGE, "vhost": vhost, "type": "topic", "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        # The history stream with the default retention (HISTORY_MAX_AGE and HISTORY_MAX_BYTES's defaults).
        "queues": [{"name": HISTORY, "vhost": vhost, "durable": True, "auto_delete": False,
                    "arguments": history_arguments(_BUS.history_max_age, _BUS.history_max_bytes)}],
        "bindings": [{"source": EXCHANGE, "vhost": vhost, "destination": HISTORY, "destination_type": "queue",
                      "routing_key": EVERY_KEY, "arguments": {}}],
    }


def local_passwords(folder: Path) -> dict[str, str]:
    """Made once per state folder, kept readable by this machine's owner only."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    found = {}
    for service in SERVICES:
        path = folder / f"{service}.password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        found[service] = path.read_text().strip()
    return found


def apply_local(run_dir: Path, vhost: str, prefix: str) -> None:
    folder = run_dir / "broker"
    defs = definitions(vhost, local_passwords(folder), prefix)
    # On stdin: rabbitmqctl runs as the broker's user, which can't read the private state folder.
    subprocess.run(["rabbitmqctl", "-q", "import_definitions", "--format", "json"], input=json.dumps(defs), text=True, check=True, timeout=120)
    print(f"==> broker users {', '.join(user_name(s, prefix) for s in SERVICES)} may use only their own queues in vhost {vhost}")


def compose_definitions() -> str:
    """docker-compose.yml's broker: vhost "/", development passwords (compose is a development stack),
    and an administrator for the management page."""
    defs = definitions("/", {s: f"shop-{s}-dev" for s in SERVICES})
    defs["users"].insert(0, {"name": "shop", "password": "shop-dev", "tags": "administrator"})
    defs["permissions"].insert(0, {"user": "shop", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"})
    return json.dumps(defs, indent=2) + "\n"


def main(argv: list[str]) -> None:
    if argv[:1] == ["local"] and len(argv) == 4:
        apply_local(Path(argv[1]), argv[2], argv[3])
    elif argv[:1] == ["compose"]:
        text = compose_definitions()
        if "--check" in argv:
            if not COMPOSE_FILE.exists() or COMPOSE_FILE.read_text() != text:
                raise SystemExit("deploy/broker/definitions.json is out of date: run deploy/broker/definitions.py compose")
        else:
            COMPOSE_FILE.write_text(text)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
