"""Break the running shop under load, one fault per round, then count: every order final, stock conserved,
analytics equal to what the clients did, one mail per mail-worthy event, nothing parked but poison."""

from __future__ import annotations

import re

import pytest
from faults import ORDERS, every_fault, run_round
from report import OUTCOMES, SHARES
from stack import CONSUMERS, SERVICES


@pytest.mark.parametrize("fault", every_fault(), ids=lambda f: re.sub(r"\W+", "-", f.name))
async def test_the_books_are_exact_after(fault_stack, fault):
    outcome = await run_round(fault_stack, fault, ORDERS)
    OUTCOMES.append(outcome)
    assert outcome.placed == ORDERS + fault.extra_orders
    assert outcome.exact, "\n".join(outcome.problems[:20] + outcome.notes)  # notes: the random kill's seed
    assert outcome.lost == outcome.twice == 0


def _total(metrics: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", metrics, re.M))


async def test_each_replica_did_some_of_the_work(fault_stack):
    if fault_stack.replicas < 2:
        pytest.skip("one process per service")
    # Counters are per process and start again with it: after the rounds above, each process has run a while.
    shares = {}
    for service in SERVICES:
        for name in fault_stack.process_names(service):
            metrics = fault_stack.metrics(name)
            shares[name] = (
                _total(metrics, "shop_faults_requests_total"),
                _total(metrics, "shop_events_handled_total"),
                _total(metrics, "shop_outbox_published_total"),
            )
    SHARES.update(shares)
    for name, (requests, handled, published) in shares.items():
        service = name.split("-")[0]
        assert requests > 0, f"{name} answered no request"
        if service in CONSUMERS:
            assert handled > 0, f"{name} handled no event"
        if service in ("auth", "products", "orders"):
            assert published > 0, f"{name} published no event"
