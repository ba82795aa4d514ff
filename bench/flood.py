"""A flood of wrong-password logins from one client address, at a fixed rate, in a process of its own.

    python -m bench.flood HOST PORT --source 127.0.0.2 --rate 200 --seconds 20

Open loop: login i is due at start + i/rate and goes out then, on an idle keep-alive connection or a new one,
whatever the answers to the ones before are doing; each is for a new, unknown email, so auth's per-account
throttle never spares it a password hash: only the gateway's limit per address does. The client is a few lines
of asyncio (no HTTP library), so that the attacker, which shares the machine with the shop here, takes as little
of its CPU as it can. Bound to `--source` (any of 127.0.0.0/8 is this machine), so the gateway
sees it as an address of its own. Prints one JSON line: the answers counted by status and by who gave them
(the gateway's limit or auth), how late the sends went out, how long the answers took, and any errors.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from collections import Counter


async def flood(host: str, port: int, source: str, rate: float, seconds: float, most: int) -> dict:
    answers: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    late: list[float] = []
    took: list[float] = []
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    run, numbers = uuid.uuid4().hex[:8], itertools.count()

    def request() -> bytes:
        body = json.dumps({"email": f"flood-{run}-{next(numbers)}@example.com", "password": "not-the-password"})
        return (
            f"POST /api/auth/login HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    async def send(due: float) -> None:
        """On an idle keep-alive connection, or a new one: a login whose answer is slow holds only its own."""
        nonlocal opened
        try:
            if idle:
                reader, writer = idle.pop()
            else:
                opened += 1
                reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            writer.write(request())
            status, length, closes = await asyncio.wait_for(read_head(reader), 60)
            body = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1
            return
        took.append(time.monotonic() - due)
        answers[f"{status} {'gateway' if b'slow down' in body else 'auth'}"] += 1
        if closes or len(idle) >= most:
            writer.close()
        else:
            idle.append((reader, writer))

    start = time.monotonic() + 0.05
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        late.append(max(0.0, -wait))
        tasks.append(asyncio.create_task(send(due)))
    sending = time.monotonic() - start
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    late.sort()
    took.sort()
    return {
        "source": source, "rate_per_s": rate, "seconds": seconds, "sent": len(late),
        "achieved_per_s": round(len(late) / sending, 1) if sending else None,
        "answers": dict(answers), "errors": dict(errors), "connections_opened": opened,
        "late_p99_ms": round(late[int(len(late) * 0.99)] * 1000, 1) if late else None,
        "answer_p50_ms": round(took[len(took) // 2] * 1000, 1) if took else None,
        "answer_p99_ms": round(took[int(len(took) * 0.99)] * 1000, 1) if took else None,
    }


async def read_head(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """The status, Content-Length and whether the server closes after this answer."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if "content-length" not in fields:
        raise ValueError(f"answer {status} without Content-Length")
    return status, int(fields["content-length"]), fields.get("connection", "").lower() == "close"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--source", default="127.0.0.2")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--idle", type=int, default=64, help="keep-alive connections kept idle at most")
    args = parser.parse_args()
    result = asyncio.run(flood(args.host, args.port, args.source, args.rate, args.seconds, args.idle))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
