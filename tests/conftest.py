"""The suites under tests/ share the isolated-stack helper (tests/isolated_stack.py) and the shop client
(tests/e2e/shop.py); both are importable by name from any of them, as is the tracing suite's OTLP receiver."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
for folder in (HERE, HERE / "e2e", HERE / "tracing"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
