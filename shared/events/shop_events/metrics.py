"""Prometheus metrics of the bus; each service exposes them on /api/<service>/metrics."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter("shop_events_handled_total", "Events handled", ["service", "event_type"])
EVENTS_DUPLICATE = Counter("shop_events_duplicate_total", "Redelivered events skipped", ["service", "event_type"])
EVENTS_FAILED = Counter("shop_events_failed_total", "Handler failures (sent to retry)", ["service", "event_type"])
EVENTS_PARKED = Counter("shop_events_parked_total", "Messages parked", ["service", "queue"])
HANDLER_SECONDS = Histogram("shop_events_handler_seconds", "Handler latency", ["service", "event_type"])
OUTBOX_PUBLISHED = Counter("shop_outbox_published_total", "Outbox rows published and confirmed", ["service"])
OUTBOX_DEPTH = Gauge("shop_outbox_depth", "Outbox rows not yet sent", ["service"])
OUTBOX_OLDEST_AGE = Gauge("shop_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox row", ["service"])
EVENTS_REQUEUED = Counter(
    "shop_events_requeued_total", "Messages given back to the broker: their retry or park could not be sent", ["service", "queue"]
)
