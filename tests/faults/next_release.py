"""The next release, as the fault suite deploys it over the running shop (fault_switch's create_<svc>_next_app):
StockReserved at version 2, a breaking change a later release might make. Its data gains a required field,
`reserved_by`; products (the producer) writes it, and the consumers' upcaster gives the version-1 messages
still on their way the value they meant. Importing a service's release into a process is what deploying its
next version does to that process; the suite never changes a running one."""

from __future__ import annotations

import dataclasses
import importlib

from shop_events import EventData
from shop_events.catalogue import CATALOGUE
from shop_events.testing import run_as_release

CHANGED = "StockReserved"
PRODUCER = "products"
CONSUMERS = ("orders", "analytics")  # every service that handles StockReserved (one left out: its parked show in the books)
NEWER_REASON = f"{CHANGED} version 2 is newer than this consumer knows (1): upgrade the consumer, then replay this message"


class StockReservedV2(EventData):
    order_id: int
    reserved_by: str  # required: an older consumer can't read the new shape as it is, hence version 2


def deploy(service: str) -> None:
    """This process runs the next release: the catalogue's StockReserved at version 2 with its upcaster,
    and for products the code that writes the new shape."""
    spec = dataclasses.replace(CATALOGUE[CHANGED], version=2, model=StockReservedV2)
    run_as_release(spec, lambda data: {**data, "reserved_by": PRODUCER})
    if service == PRODUCER:
        application = importlib.import_module("products.application")
        application.StockReserved = lambda order_id: StockReservedV2(order_id=order_id, reserved_by=PRODUCER)
