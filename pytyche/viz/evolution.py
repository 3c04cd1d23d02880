"""``experiment_evolution_gif``: round-by-round cells and policy tree as an animated GIF."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytyche._validation import invalid
from pytyche.viz._axes import pyplot
from pytyche.viz.cells import plot_cells
from pytyche.viz.policy_tree import plot_policy_tree


def _n_leaves(exp: Any) -> int:
    tree = getattr(exp.analysis, "policy_tree", None)
    return 1 if tree is None else max(1, len(tree.segments))


def _frame(exp: Any, n_rounds: int, max_leaves: int) -> Any:
    from PIL import Image

    plt = pyplot()
    # every frame has the same size; the tree panel gets ~3 inches per leaf of the widest tree
    tree_width = max(7.0, 3.0 * max_leaves)
    fig, (ax_cells, ax_tree) = plt.subplots(
        1, 2, figsize=(6.5 + tree_width, 6.0), gridspec_kw={"width_ratios": [6.5, tree_width]}, layout="constrained"
    )
    plot_cells(exp.cells, ax=ax_cells, title=f"Round {exp.round_idx + 1} of {n_rounds}: cells shipped")
    tree = getattr(exp.analysis, "policy_tree", None)
    if tree is not None:
        plot_policy_tree(tree, ax=ax_tree)
        ax_tree.set_title(f"Policy tree after round {exp.round_idx + 1} ({exp.observed.n_visitors:,} visitors so far)")
    else:
        ax_tree.axis("off")
        ax_tree.text(0.5, 0.5, "no policy tree this round", ha="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def experiment_evolution_gif(history: Sequence[Any], output_path: str | os.PathLike[str], fps: float = 1) -> Path:
    """Render round-by-round cell structure and policy-tree evolution to an animated GIF.

    Parameters
    ----------
    history
        ``SequentialExperiment.history`` (a list of ``Experiment`` snapshots), oldest first.
    output_path
        Where to write the GIF (parent folders are created).
    fps
        Frames (rounds) per second.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence) or not history:
        raise ValueError("The 'history' parameter of experiment_evolution_gif must be a non-empty list of Experiment snapshots.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise invalid("fps", "experiment_evolution_gif", "a number > 0", fps)
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    max_leaves = max(_n_leaves(exp) for exp in history)
    frames = [_frame(exp, len(history), max_leaves) for exp in history]
    size = (max(f.width for f in frames), max(f.height for f in frames))
    frames = [f if f.size == size else f.resize(size) for f in frames]
    tmp = out.with_name(out.name + ".tmp")
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    os.replace(tmp, out)
    return out
