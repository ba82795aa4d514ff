"""The benchmark's SMTP relay: takes every mail and drops it, after waiting as long as its delay file says.

    python -m bench.smtp_relay HOST PORT DELAY_FILE

The delay (seconds, a float) is read for each mail, so the benchmark slows the relay down and speeds it up
without restarting anything: the notifications service keeps its connection and simply waits longer.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiosmtpd.controller import Controller


class SlowOrFast:
    def __init__(self, delay_file: Path) -> None:
        self.delay_file = delay_file

    def delay(self) -> float:
        try:
            return float(self.delay_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's hook signature
        delay = self.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        return "250 Message accepted for delivery"


def main(host: str, port: int, delay_file: Path) -> None:
    controller = Controller(SlowOrFast(delay_file), hostname=host, port=port, ready_timeout=10)
    controller.start()
    print(f"bench SMTP relay on {host}:{port}, delay from {delay_file}", flush=True)
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(run())
    finally:
        controller.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
