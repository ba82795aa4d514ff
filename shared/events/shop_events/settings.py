"""How the bus behaves; each service fills this from its own pydantic-settings config."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BusSettings:
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
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
    relay_batch_size: int = 500
    relay_poll_seconds: float = 1.0
    # Sent outbox rows are kept this long (for tracing a correlation id), then deleted.
    outbox_retention_hours: float = 72.0
    publish_timeout_seconds: float = 30.0
