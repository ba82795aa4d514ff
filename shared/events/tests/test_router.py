"""How a service declares its handlers: what @handles refuses at import, and what bind refuses at start."""

import asyncpg
import pytest
from pydantic import BaseModel
from shop_events import Event, EventData, Router
from shop_events.catalogue import OrderCreated, ProductCreated, ProductUpdated, StockReserved


def test_a_declared_handler_is_routed_by_its_event_types_and_keeps_its_own_name():
    router = Router()

    @router.handles(ProductCreated, ProductUpdated)
    async def on_product(event: Event[ProductCreated | ProductUpdated], conn: asyncpg.Connection) -> None: ...

    @router.handles(OrderCreated, batch=True)
    async def on_orders(events: list[Event[OrderCreated]], conn: asyncpg.Connection) -> None: ...

    routes = router.bind({})
    assert router.event_types == ["OrderCreated", "ProductCreated", "ProductUpdated"]
    assert routes["ProductUpdated"].handle is on_product and not routes["ProductUpdated"].batch
    assert routes["OrderCreated"].batch and routes["OrderCreated"].name == "on_orders"


def test_the_annotation_must_name_the_declared_event_types():
    router = Router()
    with pytest.raises(TypeError, match="must be typed Event"):
        @router.handles(StockReserved)
        async def wrong(event: Event[OrderCreated], conn: asyncpg.Connection) -> None: ...
    with pytest.raises(TypeError, match="must be typed Event"):
        @router.handles(ProductCreated, ProductUpdated)
        async def half(event: Event[ProductCreated], conn: asyncpg.Connection) -> None: ...
    with pytest.raises(TypeError, match="batch handler"):
        @router.handles(OrderCreated, batch=True)
        async def single(event: Event[OrderCreated], conn: asyncpg.Connection) -> None: ...
    assert router.event_types == []


def test_an_event_type_has_one_handler_and_must_be_in_the_catalogue():
    router = Router()

    @router.handles(StockReserved)
    async def first(event: Event[StockReserved], conn: asyncpg.Connection) -> None: ...

    with pytest.raises(ValueError, match="StockReserved has two handlers: first and second"):
        @router.handles(StockReserved)
        async def second(event: Event[StockReserved], conn: asyncpg.Connection) -> None: ...

    class Unknown(EventData):
        x: int

    with pytest.raises(TypeError, match="not an event type of the catalogue"):
        router.handles(Unknown)
    with pytest.raises(TypeError, match="not an event type of the catalogue"):
        router.handles(BaseModel)  # type: ignore[arg-type]


async def test_dependencies_are_named_keyword_parameters_and_a_missing_one_fails_at_bind():
    router = Router()
    seen: list[tuple[int, str]] = []

    @router.handles(StockReserved)
    async def on_reserved(event: Event[StockReserved], conn: asyncpg.Connection, *, warehouse: str) -> None:
        seen.append((event.data.order_id, warehouse))

    with pytest.raises(LookupError, match="on_reserved needs warehouse"):
        router.bind({"post": object()})
    route = router.bind({"warehouse": "north", "unused": 1})["StockReserved"]
    event = Event(event_id=None, event_type="StockReserved", event_version=1, occurred_at=None,  # type: ignore[arg-type]
                  producer="products", correlation_id="c", data=StockReserved(order_id=3))
    await route.handle(event, None)
    assert seen == [(3, "north")]


def test_a_read_model_is_filled_only_by_events_handled_here_and_declared_once():
    router = Router()

    @router.handles(ProductCreated)
    async def on_product(event: Event[ProductCreated], conn: asyncpg.Connection) -> None: ...

    with pytest.raises(ValueError, match="unhandled: \\['ProductUpdated'\\]"):
        router.fills("catalogue", by=(ProductCreated, ProductUpdated), covers="the copy")
    router.fills("catalogue", by=(ProductCreated,), covers="the copy")
    assert router.read_model is not None and router.read_model.tables == ("catalogue",)
    assert router.read_model.event_types == ("ProductCreated",)
    with pytest.raises(ValueError, match="declared twice"):
        router.fills("catalogue", by=(ProductCreated,), covers="again")


def test_a_read_model_of_every_table_and_every_event_takes_handlers_declared_after_it():
    router = Router()

    @router.handles(ProductCreated)
    async def on_product(event: Event[ProductCreated], conn: asyncpg.Connection) -> None: ...

    router.fills(covers="every figure")

    @router.handles(OrderCreated)
    async def on_order(event: Event[OrderCreated], conn: asyncpg.Connection) -> None: ...

    assert router.read_model is not None
    assert router.read_model.tables == () and router.read_model.event_types == ("OrderCreated", "ProductCreated")
