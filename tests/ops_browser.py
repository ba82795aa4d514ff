"""A page of the stack in a real headless Chromium (Debian's, driven by Playwright), through its gateway: what the
operations page's tests (tests/ops, tests/tracing) open it with."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    """Debian's chromium; installed as `make test` does (deploy/local/lib.sh ensure_chromium) when missing.
    Skipped only where it can't be installed (not root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["bash", "-c", "source deploy/local/lib.sh && ensure_chromium"], cwd=ROOT, timeout=900)
        found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        # As root `make test` installs it (CI runs so): a browser still missing is a failed install, not a skip.
        pytest.fail("chromium is missing although this run is root and ensure_chromium should have installed it")
    if found is None:
        pytest.skip("the operations page test needs Debian's chromium: `apt-get install chromium` (as root)")
    return found


@asynccontextmanager
async def browser_page(stack) -> AsyncIterator[object]:  # noqa: ANN001
    """A page whose script errors and refused requests fail the test; a screenshot of it in the run folder."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=20_000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("response", lambda response: errors.append(f"{response.status} {response.url}") if response.status >= 400 else None)
            yield page
            await page.screenshot(path=str(stack.run_dir / "ops-page.png"), full_page=True)
            assert not errors, errors  # no script error, and nothing the page's CSP refused
        finally:
            await browser.close()


async def sign_in(page, email: str, password: str) -> None:
    await page.fill("#login-form input[name=email]", email)
    await page.fill("#login-form input[name=password]", password)
    await page.click("#login-form button[type=submit]")


