"""The pure rules: which days a daily report covers, and how a rating average is rounded."""

from datetime import UTC, date, datetime

import pytest

from analytics.domain import MAX_DAYS, day_window


def test_a_window_ends_today_and_holds_exactly_the_days_asked_for():
    window = day_window(date(2024, 3, 1), 30)
    assert (window.first, window.last) == (date(2024, 2, 1), date(2024, 3, 1))  # 29 days of a leap February + 1
    assert window.starts == datetime(2024, 2, 1, tzinfo=UTC)
    assert window.ends == datetime(2024, 3, 2, tzinfo=UTC)  # exclusive: the whole of today is in


def test_a_one_day_window_is_today_from_midnight_to_midnight_utc():
    window = day_window(date(2024, 12, 31), 1)
    assert window.first == window.last == date(2024, 12, 31)
    assert window.ends == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1])
def test_a_window_outside_one_to_366_days_is_refused(days):
    with pytest.raises(ValueError):
        day_window(date(2024, 1, 1), days)

