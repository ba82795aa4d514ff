"""One isolated copy of the stack for the contract tests (tests/isolated_stack.py), named `shoptest_<run>_contract_`
so it runs beside the other suites' stacks. The documents are read as another tool reads them: over HTTP, through
the gateway. The official AsyncAPI parser is Node.js (`deploy/local/test.sh` installs it into node_modules here)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from isolated_stack import IsolatedStack
from shop import Shop

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    stack = IsolatedStack("contract", tmp_path_factory.mktemp("contract-stack"), "contract-admin@example.com", "contract-admin-password")
    with stack.running():
        yield stack


@pytest.fixture
async def shop(stack: IsolatedStack) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
        yield Shop(http, stack)


@pytest.fixture(scope="session")
def served_asyncapi(stack: IsolatedStack) -> str:
    """The AsyncAPI document's text, exactly as the gateway serves it."""
    response = httpx.get(f"{stack.gateway}/api/events/asyncapi.json", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
    return response.text


@pytest.fixture(scope="session")
def asyncapi_parser() -> Callable[[str], dict]:
    """Runs @asyncapi/parser on a document's text: {"parsed": bool, "diagnostics": [{severity, code, message, path}]}."""
    script = HERE / "asyncapi_parse.js"
    assert (HERE / "node_modules" / "@asyncapi" / "parser").is_dir(), "run the tests by deploy/local/test.sh: it installs the parser"

    def parse(text: str) -> dict:
        done = subprocess.run(["node", str(script)], input=text, capture_output=True, text=True, timeout=60, cwd=HERE)
        assert done.returncode in (0, 1), f"the parser did not run: {done.stderr}"
        return json.loads(done.stdout)

    return parse


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every contract test reads what the whole stack serves: `-m "not slow"` leaves them out, as the end-to-end tests."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
