"""The one way a service declares what it consumes: a router and its `@handles` decorator.

    router = Router()

    @router.handles(OrderCreated)
    async def on_order_created(event: Event[OrderCreated], conn: DbConnection) -> None: ...

    @router.handles(OrderCreated, batch=True)   # a run of consecutive events of the type in one call
    async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection) -> None: ...

A handler runs inside the consumer's transaction (`conn`, with the inbox row written for it). What else it
needs (a mail relay, a payment provider) it names as keyword-only parameters; the service's composition root
(main.py) supplies them, and a missing one fails at start, not at the first event. The declared models and
the handler's annotation must agree, so mypy checks every `event.data.field` against the catalogue.
(`DbConnection` is shop_events.DbConnection: a connection of its own or one lent by a pool.)
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from .catalogue import CATALOGUE, EventSpec
from .envelope import Event, EventData

F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_BY_MODEL: dict[type[EventData], EventSpec] = {spec.model: spec for spec in CATALOGUE.values()}


@dataclass(frozen=True)
class Route:
    """One event type's handler as the consumer calls it: `handle(event, conn)`, or `handle(events, conn)`
    when `batch` (all or nothing for the run: if it raises, the consumer hands it the events one at a time
    to find the one that fails; events of a run may carry different correlation ids)."""

    event_type: str
    handle: Callable[..., Awaitable[None]]
    batch: bool
    name: str


@dataclass(frozen=True)
class ReadModel:
    """The tables a service's events fill (copies and facts, never its own source of truth), and the event
    types whose handlers fill them: a history rebuild empties the tables and replays those events."""

    tables: tuple[str, ...]  # none: every table of the service's database but the bus's own (history.py)
    event_types: tuple[str, ...]
    covers: str  # what a rebuild gives back, in a sentence, for the operator


class Router:
    def __init__(self) -> None:
        self._declared: dict[str, Route] = {}
        self._fills: tuple[tuple[str, ...], tuple[str, ...] | None, str] | None = None

    def fills(self, *tables: str, by: tuple[type[EventData], ...] | None = None, covers: str) -> None:
        """Declare the service's read model: `tables` (none named: every table of its database, for a service
        whose tables are all facts from events), filled by the handlers of the events `by` (declared on this
        router already; None: every event type it handles, also those declared later). shop_events.history
        rebuilds it; one declaration per service."""
        names = None if by is None else tuple(_spec(model).name for model in by)
        unhandled = sorted(set(names or ()) - self._declared.keys())
        if unhandled or names == ():
            raise ValueError(f"a read model needs events with handlers here; unhandled: {unhandled}")
        if self._fills is not None:
            raise ValueError("the read model is declared twice")
        self._fills = (tables, names, covers)

    @property
    def read_model(self) -> ReadModel | None:
        if self._fills is None:
            return None
        tables, names, covers = self._fills
        return ReadModel(tables, names if names is not None else tuple(self.event_types), covers)

    def handles(self, *models: type[EventData], batch: bool = False) -> Callable[[F], F]:
        """Declare the decorated function as the handler of these catalogue event types."""
        if not models:
            raise TypeError("@handles needs at least one event type")
        specs = [_spec(model) for model in models]

        def declare(handler: F) -> F:
            _check_annotation(handler, set(models), batch)
            for spec in specs:
                if spec.name in self._declared:
                    raise ValueError(f"{spec.name} has two handlers: {self._declared[spec.name].name} and {handler.__name__}")
                self._declared[spec.name] = Route(spec.name, handler, batch, handler.__name__)
            return handler

        return declare

    @property
    def event_types(self) -> list[str]:
        return sorted(self._declared)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._declared.values())

    def bind(self, dependencies: Mapping[str, object]) -> dict[str, Route]:
        """The routes with each handler's keyword-only parameters filled from the composition root's
        dependencies; a parameter with no dependency of its name fails here, at start."""
        bound: dict[str, Route] = {}
        for route in self._declared.values():
            wanted = _keyword_only(route.handle)
            missing = sorted(wanted - dependencies.keys())
            if missing:
                raise LookupError(f"{route.name} needs {', '.join(missing)}, which the service does not provide")
            handle = functools.partial(route.handle, **{name: dependencies[name] for name in wanted}) if wanted else route.handle
            bound[route.event_type] = Route(route.event_type, handle, route.batch, route.name)
        return bound


def _spec(model: type[EventData]) -> EventSpec:
    try:
        return _BY_MODEL[model]
    except (KeyError, TypeError):
        raise TypeError(f"{model!r} is not an event type of the catalogue") from None


def _keyword_only(handler: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(handler).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _check_annotation(handler: Callable[..., Any], models: set[type[EventData]], batch: bool) -> None:
    """The first parameter must be typed Event[<the declared models>] (list[...] of it for a batch)."""
    first = next(iter(inspect.signature(handler).parameters), None)
    hints = typing.get_type_hints(handler)
    annotation = hints.get(first) if first else None
    expected = f"{'list[Event[...]]' if batch else 'Event[...]'} of {' | '.join(sorted(m.__name__ for m in models))}"
    if batch:
        if typing.get_origin(annotation) is not list:
            raise TypeError(f"{handler.__name__}: a batch handler's first parameter must be {expected}")
        (annotation,) = typing.get_args(annotation)
    if typing.get_origin(annotation) is not Event or _members(typing.get_args(annotation)[0]) != models:
        raise TypeError(f"{handler.__name__}: the first parameter must be typed {expected}, not {annotation!r}")


def _members(data_type: Any) -> set[Any]:
    if typing.get_origin(data_type) in (Union, types.UnionType):
        return set(typing.get_args(data_type))
    return {data_type}
