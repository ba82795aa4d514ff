"""How the bus behaves. The defaults live here and only here: each service's pydantic-settings config
(shop_common.config.ServiceSettings) takes them from this class, and so does the benchmark."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# The development broker of local mode; deployments pass their own URL (AMQP_URL or <SERVICE>_AMQP_URL).
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def amqp_url_from_env() -> str:
    """The broker a tool run by hand talks to: $AMQP_URL, else the development broker."""
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


@dataclass(frozen=True)
class BusSettings:
    amqp_url: str = DEFAULT_AMQP_URL
    # Unacked deliveries per lane consumer; bounds memory and how much a crash re-delivers.
    prefetch: int = 1024
    # Deliveries committed in one database transaction (group commit), then acked together.
    batch_size: int = 512
    # When a batch would be small but more deliveries are already waiting, wait this long for more.
    batch_linger_ms: float = 2.0
    # A failing handler is tried this many times in all before its message is parked.
    max_attempts: int = 5
    # Wait-queue delays between attempts; attempt n waits delays[min(n, len) - 1].
    retry_delays_ms: tuple[int, ...] = field(default=(1_000, 5_000, 30_000, 120_000))
    # A batch that hit a serialization failure, a deadlock or a statement timeout is tried again this many
    # times as it is before its events are tried one by one (where a failure counts as an attempt).
    contention_retries: int = 3
    # Inbox rows (processed_events) are kept this long, then pruned. It must outlast the longest way a
    # redelivery can come back (every retry delay, plus a margin for an outage): see inbox_retention_floor.
    inbox_retention_hours: float = 168.0
    relay_batch_size: int = 500
    relay_poll_seconds: float = 1.0
    # Sent outbox rows are kept this long (for tracing a correlation id), then deleted.
    outbox_retention_hours: float = 72.0
    publish_timeout_seconds: float = 30.0
    # The history stream (shop.history) keeps every event this long (RabbitMQ's x-max-age: Y, M, D, h, m, s)
    # and at most this many bytes: whichever limit is reached first drops its oldest segments.
    history_max_age: str = "7D"
    history_max_bytes: int = 20_000_000_000
    # Events a replay of the history (a rebuild, a backfill) commits together; as many are in flight (history.py).
    history_batch_size: int = 2048

    def __post_init__(self) -> None:
        floor = self.inbox_retention_floor_hours()
        if self.inbox_retention_hours < floor:
            raise ValueError(
                f"inbox retention {self.inbox_retention_hours} h is shorter than the retry path ({floor:.2f} h):"
                " a redelivered event could then be handled twice"
            )

    def inbox_retention_floor_hours(self) -> float:
        """Every retry delay once, plus a day for a broker or consumer outage while a message waits."""
        return sum(self.retry_delays_ms) / 3_600_000 + 24.0
