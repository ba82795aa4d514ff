"""How an average rating is shown everywhere (products and analytics must agree to the cent)."""

from decimal import ROUND_HALF_UP, Decimal

_PLACES = Decimal("0.01")


def rating_average(rating_sum: int, rating_count: int) -> str | None:
    """The mean of the published ratings with two decimals, half up ("4.33"); None before the first one."""
    if rating_count == 0:
        return None
    return str((Decimal(rating_sum) / Decimal(rating_count)).quantize(_PLACES, rounding=ROUND_HALF_UP))
