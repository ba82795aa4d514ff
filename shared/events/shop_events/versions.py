"""Event versions and the upcasters between them (docs/design.md, "Versioning events").

An additive change (a new optional field) keeps an event type's version: older consumers ignore the field,
newer ones default it. A breaking change (a field removed, renamed, retyped, or given another meaning) raises
the version in the catalogue (`EventSpec.version`) and adds here the upcaster from the version before: a pure
function from the old `data` to the new one. A consumer then takes any version up to its own:
- older: upcast step by step to the version it knows, then validated by the model as usual;
- its own: as it is (the consumer's fast path);
- newer: parked at once with the reason, since no code here knows that shape; `shop-events parked replay`
  after the consumer's upgrade handles it.
During a rollout the producer is upgraded last (or publishes the old version until every consumer is
upgraded), so parking is the exception, never the plan.

No event type has a version 2 yet: UPCASTERS is empty, and every published event is at version 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .catalogue import CATALOGUE, EventSpec

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]

# (event type, version it turns into the next one) -> upcaster
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class NotUpcastable(Exception):
    """A message whose version can't be turned into the one this consumer knows: park it with this reason."""


def upcast(spec: EventSpec, version: int, data: Data, upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> Data:
    """`data` of `version` in the shape of the version the catalogue knows (`spec.version`)."""
    steps = UPCASTERS if upcasters is None else upcasters
    if version > spec.version:
        raise NotUpcastable(
            f"{spec.name} version {version} is newer than this consumer knows ({spec.version}):"
            " upgrade the consumer, then replay this message"
        )
    if version < 1:
        raise NotUpcastable(f"{spec.name} version {version} does not exist (versions start at 1)")
    for step in range(version, spec.version):
        upcaster = steps.get((spec.name, step))
        if upcaster is None:
            raise NotUpcastable(f"no upcaster from {spec.name} version {step} to {step + 1}")
        try:
            data = upcaster(data)
        except Exception as exc:  # an old message the upcaster can't read: named, never retried in vain
            raise NotUpcastable(f"upcasting {spec.name} version {step} to {step + 1} failed: {exc!r}") from exc
    return data


def missing_upcasters(specs: Mapping[str, EventSpec] = CATALOGUE,
                      upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> list[str]:
    """Each step from version 1 to a type's version that has no upcaster (test_versions.py keeps it empty)."""
    steps = UPCASTERS if upcasters is None else upcasters
    return [f"{name} {v} -> {v + 1}" for name, spec in specs.items() for v in range(1, spec.version) if (name, v) not in steps]
