"""shop_events: the shop's event catalogue and bus (topology, publisher, outbox, consumer, retries, parking)."""

from pathlib import Path

from .bus import Bus
from .catalogue import CATALOGUE, EventSpec, Lane
from .db_types import DbConnection
from .envelope import Envelope, Event, EventData, Money, correlation_id, handling_event
from .outbox import add_event, add_events, outbox_insert
from .router import Route, Router
from .settings import BusSettings

SCHEMA = Path(__file__).with_name("schema.sql")


async def install_schema(conn: DbConnection) -> None:
    """Create the outbox and inbox tables (idempotent); run under the caller's migration lock."""
    await conn.execute(SCHEMA.read_text())


__all__ = [
    "Bus", "BusSettings", "add_events", "CATALOGUE", "Envelope", "Event", "EventData", "EventSpec", "Lane", "Money", "Route",
    "Router", "add_event", "correlation_id", "DbConnection", "handling_event", "install_schema", "outbox_insert",
    "SCHEMA",
]
