"""The examples are not installed packages: their folders go on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "sales_ledger"))


import pytest  # noqa: E402


@pytest.fixture
def ledger_database_url(make_database):  # noqa: ANN001, ANN201
    """A second fresh database (made outside the event loop, like database_url)."""
    return make_database()
