"""The one rule for showing an average rating, used by products and analytics alike."""

import pytest
from shop_common.ratings import rating_average


def test_no_published_review_means_no_average():
    assert rating_average(0, 0) is None


@pytest.mark.parametrize(
    ("rating_sum", "count", "expected"),
    [(4, 1, "4.00"), (9, 2, "4.50"), (13, 3, "4.33"), (14, 3, "4.67"), (5, 3, "1.67"), (33, 8, "4.13"), (1, 8, "0.13")],
)
def test_the_average_has_two_decimals_rounding_halves_up(rating_sum, count, expected):
    assert rating_average(rating_sum, count) == expected
