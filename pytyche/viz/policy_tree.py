"""``plot_policy_tree``: the policy tree as a diagram, its leaves labelled with their segments."""

from __future__ import annotations

from typing import Any

from pytyche.viz._axes import get_ax


def _split_text(feature: str, threshold: float, categories: dict, allowed: dict) -> tuple[str, str, list, list]:
    """Edge labels of a split; for a categorical feature only the categories still reachable."""
    if feature in categories:
        cats = list(categories[feature])
        reach = allowed.get(feature, cats)
        cut = int(threshold) + 1
        left = [c for c in cats[:cut] if c in reach]
        right = [c for c in cats[cut:] if c in reach]
        fmt = lambda vals: f"{feature} = {vals[0]}" if len(vals) == 1 else f"{feature} in {{{', '.join(map(str, vals))}}}"  # noqa: E731
        return fmt(left or cats[:cut]), fmt(right or cats[cut:]), left, right
    return f"{feature} <= {threshold:.3g}", f"{feature} > {threshold:.3g}", [], []


def _result_of(tree_policy: Any) -> Any:
    # a PolicyTreeResult, or a TreePolicy wrapping one (or wrapping a bare sklearn tree)
    for obj in (tree_policy, getattr(tree_policy, "tree", None)):
        if obj is not None and hasattr(obj, "segments") and hasattr(obj, "allocation_map"):
            return obj
    raise TypeError(
        "The 'tree_policy' parameter of plot_policy_tree must be a PolicyTreeResult or a TreePolicy built "
        f"from one. Got {type(tree_policy).__name__} instead."
    )


def plot_policy_tree(tree_policy: Any, ax: Any = None) -> Any:
    """Tree diagram of a policy tree: split rules on the edges, segments at the leaves.

    Each leaf shows its segment id, population share, best treatment, Thompson allocation and
    bootstrap stability.

    Parameters
    ----------
    tree_policy
        A ``PolicyTreeResult`` (or a ``TreePolicy`` built from one).
    ax
        Matplotlib axes; ``None`` creates a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    result = _result_of(tree_policy)
    t = result.tree.tree_
    names = list(result.feature_names)
    cats = dict(getattr(result, "categories", {}) or {})
    n_leaves = int(sum(1 for i in range(t.node_count) if t.children_left[i] == -1))
    depth = int(result.tree.get_depth())
    ax = get_ax(ax, (max(6.0, 3.2 * n_leaves), 1.9 * (depth + 1) + 0.6))
    pos: dict[int, tuple[float, float]] = {}
    edge_labels: dict[int, tuple[str, str]] = {}
    counter = [0]

    def place(node: int, level: int, allowed: dict) -> float:
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            x = float(counter[0])
            counter[0] += 1
        else:
            feat = names[t.feature[node]] if t.feature[node] < len(names) else f"x{t.feature[node]}"
            yes, no, lcats, rcats = _split_text(feat, float(t.threshold[node]), cats, allowed)
            edge_labels[node] = (yes, no)
            lx = place(left, level + 1, {**allowed, feat: lcats} if feat in cats else allowed)
            rx = place(right, level + 1, {**allowed, feat: rcats} if feat in cats else allowed)
            x = (lx + rx) / 2
        pos[node] = (x, -float(level))
        return x

    place(0, 0, {})
    box = dict(boxstyle="round,pad=0.4", fc="#f3f6fa", ec="#4a6fa5")
    leaf_box = dict(boxstyle="round,pad=0.4", fc="#eaf5ea", ec="#2c7a2c")
    for node, (x, y) in pos.items():
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            try:
                seg = result.segment(int(node))
            except ValueError:
                seg = None
            alloc = result.allocation_map.get(int(node), {})
            lines = [f"segment #{node}"]
            if seg is not None:
                lines.append(f"{seg.population_share:.0%} of visitors")
                if seg.best_treatment:
                    lines.append(f"best: {seg.best_treatment}")
                stab = "n/a" if seg.stability_score != seg.stability_score else f"{seg.stability_score:.2f}"
                lines.append(f"stability {stab}")
            if alloc:
                lines.append(" / ".join(f"{k} {v:.0%}" for k, v in alloc.items()))
            ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=8, bbox=leaf_box)
            continue
        feat = names[t.feature[node]] if t.feature[node] < len(names) else f"x{t.feature[node]}"
        yes, no = edge_labels[node]
        ax.text(x, y, f"{feat}?", ha="center", va="center", fontsize=9, bbox=box)
        for child, label in ((left, yes), (right, no)):
            cx, cy = pos[child]
            ax.plot([x, cx], [y - 0.12, cy + 0.18], color="#888888", lw=1)
            ax.text((x + cx) / 2, (y + cy) / 2, label, ha="center", va="center", fontsize=7.5,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none"))
    ax.set_xlim(-0.7, max(0.7, n_leaves - 0.3))
    ax.set_ylim(-depth - 0.6, 0.5)
    ax.axis("off")
    ax.set_title(f"Policy tree: {n_leaves} segment{'s' if n_leaves != 1 else ''}")
    return ax
