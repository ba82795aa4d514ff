"""The one list of the shop's services: name, local port, lanes consumed on, database.

Everything else reads it (Python) or is generated from it by `deploy/generate.py` (the local runner's
bash, the operations page, the gateway, docker-compose.yml, the databases' SQL, the Kubernetes manifests,
the broker's definitions). Adding a service: one entry here, its folder under services/, then run
`.venv/bin/python deploy/generate.py` (README: "Add a service").
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import Lane

# Local mode's default SHOP_PORT_BASE: a service listens on the base + its position (1, 2, ...), so that
# SHOP_PORT_BASE moves every port at once (a test's isolated stack takes a block of free ports).
PORT_BASE = 8000


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # local mode, with the default PORT_BASE; in a container every service listens on 8000
    lanes: tuple[Lane, ...]  # the lanes it consumes on (none: it handles no events)
    database: str  # its own PostgreSQL database, owned by the role `shop_<database>`

    @property
    def role(self) -> str:
        return f"shop_{self.database}"

    @property
    def upper(self) -> str:
        """The prefix of its own settings: AUTH_DATABASE_URL, AUTH_UPSTREAM."""
        return self.name.upper()


_BOTH = (Lane.IMMEDIATE, Lane.BACKGROUND)

SERVICES: tuple[Service, ...] = (
    Service("auth", PORT_BASE + 1, (), "auth"),
    Service("products", PORT_BASE + 2, _BOTH, "products"),
    Service("orders", PORT_BASE + 3, _BOTH, "orders"),
    Service("notifications", PORT_BASE + 4, _BOTH, "notifications"),
    Service("analytics", PORT_BASE + 5, _BOTH, "analytics"),
)

NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
CONSUMERS: tuple[str, ...] = tuple(s.name for s in SERVICES if s.lanes)


def service(name: str) -> Service:
    for found in SERVICES:
        if found.name == name:
            return found
    raise KeyError(f"no such service: {name}")
