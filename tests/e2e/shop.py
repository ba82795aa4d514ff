"""The suites' name for the client of a running shop, which lives in shop_common (the benchmark uses it too)."""

from shop_common.shop_client import Customer, Shop, Stack, eventually, money, unique_email
from shop_events.registry import NAMES as SERVICES

__all__ = ["SERVICES", "Customer", "Shop", "Stack", "eventually", "money", "unique_email"]
