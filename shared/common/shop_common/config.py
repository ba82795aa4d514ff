"""Settings every service shares, from the environment, with the defaults of docs/contract.md section 1."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import BaseSettings, SettingsConfigDict
from shop_events import BusSettings

_BUS = BusSettings()  # the bus's defaults, written once in shop_events.settings


class ServiceSettings(BaseSettings):
    """A service subclasses this, names itself and adds its `<SERVICE>_DATABASE_URL` field."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service: ClassVar[str]
    database_url: str

    amqp_url: str = _BUS.amqp_url
    jwt_public_key_path: Path = Path(".run/keys/jwt_public.pem")
    # Which parts this process runs, so that on Kubernetes each scales on its own.
    roles: str = "api,consumers,relay"
    log_level: str = "INFO"
    # A trace viewer's address for one trace, without the id (Jaeger: http://host:16686/trace); the operations
    # page links each trace id to <it>/<trace id>. Tracing itself is set by OTEL_* alone (shop_common/tracing.py).
    ops_trace_viewer_url: str = ""
    db_pool_size: int = 10
    # Backpressure: past this many requests in hand at once, a process answers 503 with Retry-After at once
    # instead of queueing more (shop_common.app.InFlightLimit); 0 for no limit.
    max_requests_in_flight: int = 64

    event_max_attempts: int = _BUS.max_attempts
    event_retry_delays_ms: str = ",".join(map(str, _BUS.retry_delays_ms))
    event_prefetch: int = _BUS.prefetch
    event_batch_size: int = _BUS.batch_size
    event_batch_linger_ms: float = _BUS.batch_linger_ms
    event_inbox_retention_hours: float = _BUS.inbox_retention_hours
    # shop.history's retention, where a start declares it (a deployed broker's definitions make it).
    history_max_age: str = _BUS.history_max_age
    history_max_bytes: int = _BUS.history_max_bytes
    history_batch_size: int = _BUS.history_batch_size
    # A service starting for the first time (no history position in its database) replays the history
    # stream through its handlers before it consumes live (shop_events.history).
    history_backfill: bool = False

    def runs(self, role: str) -> bool:
        return role in {r.strip() for r in self.roles.split(",")}

    def bus_settings(self) -> BusSettings:
        return BusSettings(
            amqp_url=self.amqp_url,
            max_attempts=self.event_max_attempts,
            retry_delays_ms=tuple(int(ms) for ms in self.event_retry_delays_ms.split(",")),
            prefetch=self.event_prefetch,
            batch_size=self.event_batch_size,
            batch_linger_ms=self.event_batch_linger_ms,
            inbox_retention_hours=self.event_inbox_retention_hours,
            history_max_age=self.history_max_age,
            history_max_bytes=self.history_max_bytes,
            history_batch_size=self.history_batch_size,
        )
