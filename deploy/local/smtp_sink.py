"""The development SMTP sink: takes every mail and keeps it as a .eml file, so people and tests can read it.

    python smtp_sink.py HOST PORT MAIL_DIR [DELAY_FILE]

Each file is the message as received, with X-Envelope-From, X-Envelope-To and X-Envelope-Peer (the client's
address and port: one per SMTP connection) added on top; it is
written under a temporary name and renamed, so a reader never sees half a mail. With DELAY_FILE (the
benchmark's slow relay), each mail is first held for as many seconds as that file says, read per mail so
the relay can be slowed down and sped up while it runs.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller

_sequence = itertools.count(1)


class KeepAsFiles:
    def __init__(self, folder: Path, delay_file: Path | None = None) -> None:
        self.folder = folder
        self.delay_file = delay_file

    def delay(self) -> float:
        if self.delay_file is None:
            return 0.0
        try:
            return float(self.delay_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's hook signature
        if (delay := self.delay()) > 0:
            await asyncio.sleep(delay)
        peer = ":".join(map(str, session.peer[:2])) if isinstance(session.peer, tuple) else str(session.peer)
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Envelope-Peer: {peer}\r\n"
        )
        name = f"{time.time():.6f}-{next(_sequence):06d}"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(head.encode() + envelope.original_content)
        tmp.rename(self.folder / f"{name}.eml")
        return "250 Message accepted for delivery"


def main(host: str, port: int, folder: Path, delay_file: Path | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(KeepAsFiles(folder, delay_file), hostname=host, port=port, ready_timeout=10)
    controller.start()
    print(f"SMTP sink on {host}:{port}, keeping mail in {folder}", flush=True)
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
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]) if len(sys.argv) == 5 else None)
