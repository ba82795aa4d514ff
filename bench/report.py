"""The benchmark's outputs: a table on stdout, bench/results.json and bench/results.png."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def not_measured(cls, name: str, exc: BaseException) -> Figure:
        """A figure whose run stopped: no value, not met, and why."""
        return cls(name, None, "", None, None, "-", False, f"not measured: {type(exc).__name__}: {exc}"[:300])


def missing(figures: list[Figure], names: list[str], exc: BaseException) -> list[Figure]:
    """Those of `names` that `figures` lacks, as not measured because of `exc`."""
    done = {f.name for f in figures}
    return [Figure.not_measured(name, exc) for name in names if name not in done]


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        # The figures are ratios measured side by side, but a busy machine still bends them: this says how busy.
        "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "goal", "met", "note")]
    for f in figures:
        rows.append((
            f.name,
            "-" if f.value is None else f"{f.value:,.1f} {f.unit}",
            "-" if f.baseline is None else f"{f.baseline:,.1f}",
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.goal,
            {True: "yes", False: "NO", None: "-"}[f.met],
            f.note,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(figures: list[Figure], folder: Path, extra: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine(), "figures": [asdict(f) for f in figures], **(extra or {})}
    (folder / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(figures, folder / "results.png")


def plot(figures: list[Figure], path: Path) -> None:
    """Left: each ratio against its goal (green met, red not, grey no goal). Right: the figures that have no baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [f for f in figures if f.ratio is not None]
    others = [f for f in figures if f.ratio is None]
    height = 0.7 * max(len(ratios), len(others), 3) + 1.8
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [3, 2]})
    names = [f.name for f in ratios]
    values = [f.ratio for f in ratios]
    left.barh(names, values, color=[{True: "tab:green", False: "tab:red", None: "tab:grey"}[f.met] for f in ratios])
    for y, f in enumerate(ratios):
        left.text(f.ratio, y, f" {f.ratio:.2f}x (goal {f.goal})", va="center", fontsize=9)
    left.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("ratio to the baseline measured in the same run")
    left.set_title("figures beside their baselines")
    left.invert_yaxis()
    left.set_xlim(0, max(values + [1.0]) * 1.8)
    right.axis("off")
    right.set_title("figures without a baseline")
    lines = []
    for f in others:
        value = "-" if f.value is None else f"{f.value:,.1f} {f.unit}"
        met = {True: "met", False: "NOT met", None: ""}[f.met]
        lines.append(f"{f.name}\n    {value}   {f.goal} {met}\n    {f.note}")
    right.text(0, 1, "\n\n".join(lines), va="top", family="monospace", fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
