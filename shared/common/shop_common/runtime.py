"""Process-wide settings of the Python runtime, applied by every service (and the benchmark) at start."""

from __future__ import annotations

import gc

# Python's default (700, 10, 10) runs a collection every 700 new objects. A lane consumer holds a prefetch
# of deliveries and a batch of decoded events for some hundred milliseconds, so with the default every one
# of their objects outlived two collections into the oldest generation, and a full collection of the whole
# heap came every few thousand events: a fifth of the consumer's time (make bench, products). At 50,000
# nearly all of them are freed, by reference counting, before their first collection. The price is only
# that garbage in reference cycles (rare here) waits a little longer.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
