"""The suites' isolated copy of the stack (shop_common.isolated_stack, which the benchmark uses too), and the
pytest fixtures a suite's conftest makes of it."""

from __future__ import annotations

from collections.abc import Iterator

from shop_common.isolated_stack import ROOT, SERVICES, IsolatedStack, free_port_base, port_is_free

__all__ = ["ROOT", "SERVICES", "IsolatedStack", "free_port_base", "port_is_free", "stack_fixtures"]


def stack_fixtures(name: str, admin_email: str, admin_password: str, **settings: str):  # noqa: ANN201 - two pytest fixtures
    """A suite's own isolated stack for the session, and a client of it (shop_common.shop_client) per test, as the
    fixtures `stack` and `shop` of that suite's conftest: `stack, shop = stack_fixtures(...)`; `settings` are
    environment variables of its processes."""
    import httpx
    import pytest
    from shop_common.shop_client import Shop

    @pytest.fixture(scope="session")
    def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
        isolated = IsolatedStack(name, tmp_path_factory.mktemp(f"{name}-stack"), admin_email, admin_password, **settings)
        with isolated.running():
            yield isolated

    @pytest.fixture
    async def shop(stack: IsolatedStack):  # noqa: ANN202
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
            yield Shop(http, stack)

    return stack, shop
