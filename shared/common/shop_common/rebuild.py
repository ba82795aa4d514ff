"""A service's read model, rebuilt from the history stream by its own handlers (shop_events.history), and a
late joiner's backfill at its first start. `shop-events history rebuild <service>` calls
`app.state.history_rebuild` of the service's app, which create_service_app sets from these. A start and a
rebuild prepare the handlers' database and dependencies alike (migrate_and_wire)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg
from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import FieldTable
from shop_events import Router, history, nodes
from shop_events.history import Progress
from shop_events.router import Route
from shop_events.topology import bindings, declare_lane, ensure_exchange, history_arguments

from .bans import BannedUsers, ban_tables
from .config import ServiceSettings
from .db import create_pool, migrate
from .runtime import tune_gc

log = logging.getLogger("shop_common.rebuild")

# A service's composition root: given the database pool, it builds what the service's routes and handlers
# need (a mail relay, a payment provider, a token issuer), by name. Handlers get them as keyword-only
# parameters of those names (Router.bind), routes from request.app.state.
Wiring = Callable[[asyncpg.Pool], Awaitable[Mapping[str, object]]]


async def migrate_and_wire(
    pool: asyncpg.Pool, migrations: Path, wiring: Wiring | None, bans: BannedUsers | None
) -> dict[str, object]:
    """What a start does before any handler runs, and a rebuild alike: the service's migrations (and the ban
    list's table when it checks bans), then its wiring's dependencies, with the ban list its UserBanned handler
    adds to (shop_common.bans.record_ban)."""
    await migrate(pool, migrations, ban_tables(bans is not None))
    dependencies = dict(await wiring(pool)) if wiring is not None else {}
    if bans is not None:
        dependencies["bans"] = bans
    return dependencies


async def rebuild_read_model(
    *,
    settings: ServiceSettings,
    handlers: Router,
    migrations: Path,
    checks_bans: bool,
    wiring: Wiring | None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Empty the read model the service's router declares and replay the history through its handlers (or
    resume a rebuild that was killed), on the service's own database and broker user. Its lanes are
    declared first, as a start declares them, so that what the replay does not reach the live queue has."""
    read_model = handlers.read_model
    if read_model is None:
        raise LookupError(f"{settings.service} declares no read model (Router.fills): there is nothing to rebuild")
    tune_gc()  # the `shop-events history rebuild` process replays as a service's consumers do (and make bench)
    bus = settings.bus_settings()
    pool = await create_pool(settings.database_url, 4)
    # Any node of AMQP_URL's list, failing over to the next as the service's own connections do.
    connection = await nodes.connect_robust(bus.amqp_url, client_properties={"connection_name": f"{settings.service} rebuild"})
    try:
        routes = handlers.bind(await migrate_and_wire(pool, migrations, wiring, BannedUsers() if checks_bans else None))
        await declare_lanes(connection, settings.service, routes, bus.retry_delays_ms, bus.amqp_url,
                            history_arguments(bus.history_max_age, bus.history_max_bytes))
        return await history.replay(
            service=settings.service, connection=connection, pool=pool, routes=routes, read_model=read_model,
            settings=bus, empty_first=True, on_progress=on_progress,
        )
    finally:
        await connection.close()
        await pool.close()


async def declare_lanes(
    connection: AbstractRobustConnection, service: str, routes: Mapping[str, Route],
    retry_delays_ms: tuple[int, ...], amqp_url: str, history_stream: FieldTable,
) -> None:
    await ensure_exchange(connection, history_stream)
    channel = await connection.channel()
    try:
        for lane, keys in bindings(routes).items():
            await declare_lane(channel, service, lane, keys, retry_delays_ms, amqp_url)
    finally:
        await channel.close()


async def backfill_on_first_start(
    settings: ServiceSettings, handlers: Router, pool: asyncpg.Pool, connection: AbstractRobustConnection,
    routes: Mapping[str, Route],
) -> None:
    """HISTORY_BACKFILL: a service whose database has no history position yet (its first start) replays the
    history into its read model before it consumes live."""
    if handlers.read_model is None or await history.position(pool, settings.service) is not None:
        return
    log.info("backfilling from the history before going live")
    done = await history.replay(
        service=settings.service, connection=connection, pool=pool, routes=routes, read_model=handlers.read_model,
        settings=settings.bus_settings(), empty_first=False,
        on_progress=lambda p: log.info("backfilling", extra={"replayed": p.replayed, "offset": p.next_offset}),
    )
    log.info("backfilled; going live", extra={"replayed": done.replayed, "seconds": round(done.seconds, 1)})
