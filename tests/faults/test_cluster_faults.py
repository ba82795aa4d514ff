"""The shop on a three-node RabbitMQ cluster, broken one broker fault a round under load, then counted as
every round is: every order final, nothing lost or applied twice, stock, analytics and mail exact."""

from __future__ import annotations

import os
import re

import pytest
from cluster_faults import cluster_faults
from faults import ORDERS, run_round
from report import OUTCOMES

EVERY = os.environ.get("SHOP_FAULT_CLUSTER") == "all"  # make faults; make test runs the first alone


@pytest.mark.parametrize("fault", cluster_faults(EVERY), ids=lambda f: re.sub(r"\W+", "-", f.name))
async def test_the_books_are_exact_after_a_broker_fault(cluster_fault_stack, fault):
    outcome = await run_round(cluster_fault_stack, fault, ORDERS)
    OUTCOMES.append(outcome)
    assert outcome.placed == ORDERS + fault.extra_orders
    assert outcome.exact, "\n".join(outcome.problems[:20] + outcome.notes)
    assert outcome.lost == outcome.twice == 0
