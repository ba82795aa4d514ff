"""The suites' name for the client of a running shop, which lives in shop_common (the benchmark uses it too)."""

from shop_common.shop_client import Customer, Shop, Stack, eventually, money, unique_email
from shop_events.registry import NAMES as SERVICES

# The e2e stack's payment deadline: short enough to see fire (test_order_life.py), long beside any other pay.
PAYMENT_SECONDS = 12

__all__ = ["PAYMENT_SECONDS", "SERVICES", "Customer", "Shop", "Stack", "eventually", "money", "unique_email"]
