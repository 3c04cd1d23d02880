"""The sweep reports' figures: pyplot on a headless backend, and one way to write a figure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot``, on the Agg backend unless the caller chose one already."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a path, created if missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def save_figure(fig: Any, path: Path, dpi: int) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` at ``dpi`` and close it; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
