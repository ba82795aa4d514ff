"""The benchmark's outputs: a table on stdout, bench/results.json and bench/results.png."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    note: str = ""


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "goal", "met")]
    for f in figures:
        rows.append((
            f.name,
            f"{f.value:,.1f} {f.unit}",
            "-" if f.baseline is None else f"{f.baseline:,.1f}",
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.goal,
            {True: "yes", False: "NO", None: "-"}[f.met],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(figures: list[Figure], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"machine": machine(), "figures": [asdict(f) for f in figures]}, indent=2))
    plot(figures, folder / "results.png")


def plot(figures: list[Figure], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [f for f in figures if f.ratio is not None]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(ratios) + 1.5))
    names = [f.name for f in ratios]
    values = [f.ratio for f in ratios]
    colors = ["tab:green" if f.met else "tab:red" for f in ratios]
    ax.barh(names, values, color=colors)
    for y, f in enumerate(ratios):
        ax.text(f.ratio, y, f" {f.ratio:.2f}x (goal {f.goal})", va="center")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("ratio to the baseline measured in the same run")
    ax.set_title("shop benchmark")
    ax.invert_yaxis()
    ax.set_xlim(0, max(values + [1.0]) * 1.6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
