"""A RabbitMQ cluster of a test's own (deploy/local/broker_cluster.sh), and the levers to break it: kill -9 a
node, stop and start one, cut one off from the others, ask who leads a queue and where a client is connected."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shop_events.nodes import node_urls

from .isolated_stack import port_is_free
from .throwaway import with_vhost

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "local" / "broker_cluster.sh"


@dataclass
class BrokerCluster:
    folder: Path  # the rabbitmq user must reach it: not under pytest's private tmp
    nodes: int = 3
    amqp_url: str = ""

    def start(self) -> None:
        base = free_ports(self.nodes)
        self._run("start", str(self.folder), str(self.nodes), str(base), timeout=300)
        self.load()

    def load(self) -> BrokerCluster:
        """What start recorded in the folder (a cluster that `BROKER_NODES=3 make up` started, say)."""
        # shell words, as bash's printf %q wrote them
        env = dict(word.split("=", 1) for word in shlex.split((self.folder / "cluster.env").read_text()))
        self.amqp_url, self.nodes = env["AMQP_URL"], int(env["NODES"])
        return self

    def running(self) -> list[int]:
        """The nodes whose recorded process runs (paused ones too)."""
        return [n for n in range(1, self.nodes + 1) if _alive(self.folder / "pids" / f"node{n}.pid")]

    def stop(self) -> None:
        if (self.folder / "cluster.env").exists():
            self._run("stop", str(self.folder), timeout=180, check=False)

    def url(self, node: int) -> str:
        """Node `node`'s URL alone (1-based)."""
        return node_urls(self.amqp_url)[node - 1]

    def kill9(self, node: int) -> None:
        self._run("kill9", str(self.folder), str(node))

    def stop_node(self, node: int) -> None:
        self._run("stop-one", str(self.folder), str(node), timeout=180)

    def start_node(self, node: int) -> None:
        self._run("start-one", str(self.folder), str(node), timeout=300)

    def cut(self, node: int) -> None:
        self._run("cut", str(self.folder), str(node))

    def heal(self, node: int) -> None:
        self._run("heal", str(self.folder), str(node))

    def cut_client(self, node: int, client_port: int) -> None:
        self._run("cut-client", str(self.folder), str(node), str(client_port))

    def heal_client(self, node: int, client_port: int) -> None:
        self._run("heal-client", str(self.folder), str(node), str(client_port))

    def ctl(self, *args: str, node: int | None = None) -> str:
        """rabbitmqctl on `node`, or on the first running node that answers."""
        for n in [node] if node else self.running():
            done = self._run("ctl", str(self.folder), str(n), "-q", *args, timeout=120, check=node is not None)
            if done.returncode == 0:
                return done.stdout
        raise RuntimeError(f"no node of {self.folder} answers rabbitmqctl {' '.join(args)}")

    def add_vhost(self, vhost: str) -> str:
        """The vhost made, guest let in; the URLs of every node for it."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return with_vhost(self.amqp_url, vhost)

    def node_of_port(self, port: int) -> int:
        return port - int(self.url(1).rsplit(":", 1)[1].split("/")[0]) + 1

    def queues(self, vhost: str, node: int | None = None) -> list[dict[str, object]]:
        """name, type, leader, members and online members of every queue of the vhost."""
        columns = ("name", "type", "leader", "members", "online")
        out = self.ctl("list_queues", "-p", vhost, *columns, "--formatter", "json", node=node)
        return list(json.loads(out))

    def leader(self, vhost: str, queue: str, node: int | None = None) -> int:
        """The number of the node that leads `queue`."""
        [found] = [q for q in self.queues(vhost, node) if q["name"] == queue]
        return self.node_number(str(found["leader"]))

    def node_number(self, name: str) -> int:
        return "-abcdefghi".index(name.split("@")[0].rsplit("-", 1)[1])

    def connected_nodes(self, connection_name: str, node: int | None = None) -> list[int]:
        """The nodes the named client connections are on (by the AMQP port each one reached)."""
        return [n for name, n, _ in self.client_connections(node) if name == connection_name]

    def client_connections(self, node: int | None = None) -> list[tuple[str, int, int]]:
        """(connection name, node, the client's own port) of every client connection."""
        out = self.ctl("list_connections", "client_properties", "port", "peer_port", "--formatter", "json", node=node)
        return [(_connection_name(c), self.node_of_port(int(c["port"])), int(c["peer_port"])) for c in json.loads(out)]

    def _run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"broker_cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


def free_ports(nodes: int) -> int:
    """A first AMQP port such that the nodes' AMQP ports and their distribution ports (+1000) are free."""
    for _ in range(200):
        base = random.randrange(20_000, 31_000, 10)
        if all(port_is_free(base + i) and port_is_free(base + 1000 + i) for i in range(nodes)):
            return base
    raise RuntimeError("no free ports")


def _alive(pid_file: Path) -> bool:
    """The recorded process still runs (lib.sh's "pid start-time command" line, the start time checked)."""
    try:
        pid, start = pid_file.read_text().split()[:2]
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19] == start
    except (OSError, ValueError, IndexError):
        return False


def _connection_name(connection: dict[str, object]) -> str:
    properties = connection.get("client_properties") or []
    for entry in properties if isinstance(properties, list) else []:
        if isinstance(entry, list) and entry and entry[0] == "connection_name":
            return str(entry[-1])
    return ""
