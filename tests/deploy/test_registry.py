"""The registry of services (shop_events/registry.py) agrees with the services themselves."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable

import pytest
from shop_events.registry import PORT_BASE, SERVICES
from shop_events.topology import bindings
from stack_files import ROOT


def declared_event_types(service: str) -> Iterable[str]:
    """The event types a service's handlers declare on its router (its UserBanned handler included)."""
    return importlib.import_module(f"{service}.handlers").router.event_types


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_registry_names_the_lanes_the_service_consumes_on(service):
    event_types = set(declared_event_types(service.name))
    assert set(service.lanes) == set(bindings(event_types)), service.name


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_registered_service_has_its_folder_image_and_app(service):
    folder = ROOT / "services" / service.name
    assert (folder / "Dockerfile").is_file() and (folder / "pyproject.toml").is_file()
    assert callable(importlib.import_module(f"{service.name}.main").create_app)


def test_every_service_folder_is_registered():
    folders = {p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file()}
    assert folders == {s.name for s in SERVICES}


def test_ports_follow_the_order_so_that_one_base_moves_them_all():
    """lib.sh and the test stacks move every port with SHOP_PORT_BASE and take a block of free ports."""
    assert [s.port for s in SERVICES] == [PORT_BASE + i for i in range(1, len(SERVICES) + 1)]
    assert len({s.name for s in SERVICES}) == len({s.database for s in SERVICES}) == len(SERVICES)


def test_names_fit_every_place_they_are_used():
    """A Python package, a /api/<name>/ path the gateway's 503 map reads as [a-z]+, a <NAME>_ settings prefix."""
    for s in SERVICES:
        assert re.fullmatch(r"[a-z]+", s.name) and re.fullmatch(r"[a-z_]+", s.database), s
