"""Faults of the broker cluster (a stack with BROKER_NODES=3): a node killed, stopped, cut off from the other
nodes, or cut off from one service. Each is injected where it happens (SIGKILL, the node's own stop, iptables
on loopback) and timed from the outside: how long until every service's connection is up on a node that
serves, beside the round's usual time to recover (every order placed before the repair final)."""

from __future__ import annotations

import asyncio
import time

from fault_base import Fault, Round, until
from shop_common.broker_cluster import BrokerCluster
from stack import SERVICES

WORK_QUEUE = "orders.background"  # the queues' leaders sit together (on the node that declared them first)


def cluster_of(r: Round) -> BrokerCluster:
    assert r.stack.cluster is not None, "a cluster fault needs a stack with BROKER_NODES=3"
    return r.stack.cluster


async def clients_back(r: Round, away: int, since: float, what: str) -> None:
    """Wait until every service process has its connection on a node other than `away`; note how long."""
    cluster, expected = cluster_of(r), len(SERVICES) * r.stack.replicas
    seen: list[tuple[str, int, int]] = []

    def connections_elsewhere() -> bool:
        try:
            seen[:] = cluster.client_connections()
        except RuntimeError:  # no node answered this time
            return False
        nodes = [node for name, node, _ in seen if name in SERVICES]
        return len(nodes) >= expected and away not in nodes

    try:
        await until(lambda: asyncio.to_thread(connections_elsewhere), 180, "every service connected to another node", 0.5)
    except AssertionError as exc:  # say who was where: (connection name, node, client port)
        raise AssertionError(f"{exc}; connections listed last: {sorted(seen)}") from None
    r.notes.append(f"{what}; every service connected to another node {time.monotonic() - since:.1f} s later")


class KillLeaderNode(Fault):
    """kill -9 the node that leads the work queues (and holds the services' connections), then start it."""

    name = "kill -9 the broker node leading the work queues"
    hold = (3.0, 6.0)

    async def inject(self, r: Round) -> None:
        cluster = cluster_of(r)
        self.node = await asyncio.to_thread(cluster.leader, "/", WORK_QUEUE)
        killed = time.monotonic()
        await asyncio.to_thread(cluster.kill9, self.node)
        await clients_back(r, self.node, killed, f"killed node {self.node}, the leader of {WORK_QUEUE}")

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(cluster_of(r).start_node, self.node)


class StopNode(Fault):
    """Stop the node most services are connected to, gracefully (its own shutdown), then start it."""

    name = "stop a broker node gracefully, then start it"
    hold = (3.0, 6.0)

    async def inject(self, r: Round) -> None:
        cluster = cluster_of(r)
        nodes = [node for name, node, _ in await asyncio.to_thread(cluster.client_connections) if name in SERVICES]
        self.node = max(set(nodes), key=nodes.count)
        stopped = time.monotonic()
        await asyncio.to_thread(cluster.stop_node, self.node)
        await clients_back(r, self.node, stopped, f"stopped node {self.node} ({nodes.count(self.node)} connections on it)")

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(cluster_of(r).start_node, self.node)


class PartitionNode(Fault):
    """Cut the leader's node off from the other two while traffic runs, then heal the cut. With
    pause_minority it finds itself alone, pauses and drops its clients, who fail over to the majority,
    where the queues elect new leaders; healed, it rejoins and its replicas catch up."""

    name = "network partition: the leading broker node cut off from the other two, then healed"
    hold = (25.0, 40.0)  # the nodes need net_ticktime (10 s) and more to see the cut

    async def inject(self, r: Round) -> None:
        cluster = cluster_of(r)
        self.node = await asyncio.to_thread(cluster.leader, "/", WORK_QUEUE)
        cut = time.monotonic()
        await asyncio.to_thread(cluster.cut, self.node)
        await clients_back(r, self.node, cut, f"cut node {self.node} off from the other nodes")
        others = [n for n in range(1, cluster.nodes + 1) if n != self.node]
        def new_leader() -> int:
            leader = cluster.leader("/", WORK_QUEUE, node=others[0])
            return leader if leader != self.node else 0

        leader = await until(lambda: asyncio.to_thread(new_leader), 60, "a new leader on the majority side")
        r.notes.append(f"{WORK_QUEUE} led by node {leader} {time.monotonic() - cut:.1f} s after the cut")

    async def repair(self, r: Round) -> None:
        cluster = cluster_of(r)
        healed = time.monotonic()
        await asyncio.to_thread(cluster.heal, self.node)

        def rejoined() -> bool:
            return cluster.running() == list(range(1, cluster.nodes + 1)) and _all_online(cluster)

        await until(lambda: asyncio.to_thread(rejoined), 180, "the cut node back with its replicas online", 1)
        r.notes.append(f"node {self.node} back in the cluster, every replica online, {time.monotonic() - healed:.1f} s after the heal")

    async def cleanup(self, r: Round) -> None:
        await asyncio.to_thread(cluster_of(r).heal, self.node)


class CutServiceFromNode(Fault):
    """The node a service is connected to is cut off from that service: its connection's packets dropped
    both ways, silently (no reset), so the service learns it only from missed heartbeats."""

    hold = (3.0, 40.0)

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = f"{service} cut off from its broker node"

    async def inject(self, r: Round) -> None:
        cluster = cluster_of(r)
        self.cuts = await asyncio.to_thread(self._connections, cluster)
        assert self.cuts, f"{self.service} has no connection to cut"
        cut = time.monotonic()
        for node, port in self.cuts:
            await asyncio.to_thread(cluster.cut_client, node, port)

        def reconnected() -> bool:
            now = self._connections(cluster)
            return len(now) >= len(self.cuts) and not set(now) & set(self.cuts)

        await until(lambda: asyncio.to_thread(reconnected), 120, f"{self.service} connected again")
        r.notes.append(f"cut {len(self.cuts)} connection(s) of {self.service} from node(s) {sorted({n for n, _ in self.cuts})};"
                       f" connected again {time.monotonic() - cut:.1f} s later")

    def _connections(self, cluster: BrokerCluster) -> list[tuple[int, int]]:
        return [(node, port) for name, node, port in cluster.client_connections() if name == self.service]

    async def repair(self, r: Round) -> None:
        await self.cleanup(r)

    async def cleanup(self, r: Round) -> None:
        for node, port in getattr(self, "cuts", []):
            await asyncio.to_thread(cluster_of(r).heal_client, node, port)


def _all_online(cluster: BrokerCluster) -> bool:
    queues = cluster.queues("/")
    return bool(queues) and all(len(q.get("online") or []) == cluster.nodes for q in queues)  # type: ignore[arg-type]


def cluster_faults(every: bool) -> list[Fault]:
    """make faults: every one; make test: the leader's node killed, the first that every cluster must survive."""
    faults: list[Fault] = [KillLeaderNode()]
    if every:
        faults += [StopNode(), PartitionNode(), CutServiceFromNode("orders")]
    return faults
