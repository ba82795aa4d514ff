"""The per-fault table: orders placed, final, lost, applied twice, parked, time to recover."""

from __future__ import annotations

OUTCOMES: list = []  # faults.Outcome of every round of this run, in order
SHARES: dict[str, tuple[float, float, float]] = {}  # process -> (requests, events handled, events published)


def table(outcomes: list, shares: dict | None = None) -> str:
    lines = [
        "| fault | processes | orders placed | final | lost | applied twice | parked | time to recover | round |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        recover = "n/a" if o.recover_seconds is None else f"{o.recover_seconds:.1f} s"
        lines.append(
            f"| {o.fault} | {o.replicas} per service | {o.placed} | {o.final} | {o.lost} | {o.twice} | {o.parked} "
            f"| {recover} | {o.seconds:.0f} s |"
        )
    notes = [f"- {o.fault} ({o.replicas}): {note}" for o in outcomes for note in o.notes]
    problems = [f"- {o.fault} ({o.replicas}): {p}" for o in outcomes for p in o.problems[:10]]
    work = ["", "| process | requests answered | events handled | events published |", "| --- | ---: | ---: | ---: |"]
    work += [f"| {name} | {r:.0f} | {h:.0f} | {p:.0f} |" for name, (r, h, p) in (shares or {}).items()]
    return "\n".join(
        lines + ([""] + notes if notes else []) + (work if shares else []) + (["", "Problems:"] + problems if problems else [])
    )
