"""The inbox is pruned after its retention, and the retention can't be set shorter than the retry path."""

import pytest
from shop_events import BusSettings
from shop_events.inbox import PRUNE_CHUNK, prune_inbox


async def test_rows_older_than_the_retention_are_pruned_and_younger_ones_kept(pool):
    await pool.execute(
        "INSERT INTO processed_events (event_id, event_type, correlation_id, queue, handled_at)"
        " SELECT gen_random_uuid(), 'StockReserved', 'c', 'testsvc.background', now() - make_interval(hours => h)"
        " FROM generate_series(1, $1) AS n, (VALUES (200), (100)) AS age(h)",
        PRUNE_CHUNK + 5,  # more old rows than one chunk: pruning goes on until none is left
    )
    assert await prune_inbox(pool, retention_hours=168) == PRUNE_CHUNK + 5
    left = await pool.fetch("SELECT DISTINCT extract(hour FROM now() - handled_at)::int + 24 * extract(day FROM now() - handled_at)::int AS hours FROM processed_events")
    assert [r["hours"] for r in left] == [100]
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == PRUNE_CHUNK + 5


def test_a_retention_shorter_than_the_retry_path_is_refused():
    with pytest.raises(ValueError, match="shorter than the retry path"):
        BusSettings(inbox_retention_hours=24.0)  # the delays (about 2.6 min) plus a day: 24.04 h
    assert BusSettings(retry_delays_ms=(1000,), inbox_retention_hours=25).inbox_retention_hours == 25
