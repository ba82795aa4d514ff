"""Products has no read model: every table is its own truth, so a rebuild is refused, touching nothing."""

import subprocess
import sys
from pathlib import Path


def test_a_rebuild_of_products_is_refused():
    done = subprocess.run([str(Path(sys.executable).with_name("shop-events")), "history", "rebuild", "products"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "products declares no read model" in done.stderr
