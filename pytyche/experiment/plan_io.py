"""Plan export: a :class:`~pytyche.experiment.NextRoundPlan` as JSON (and SQL) for a platform's router.

The schema is documented in ``docs/plan_schema.md``. In short, a plan is a JSON object::

    {"format": "pytyche.next_round_plan", "version": 1, "round_idx": 1, "n_visitors": 4000,
     "treatments": [...], "active_treatments": [...], "dropped_treatments": [...], "rationale": "...",
     "cells": [{"id": "control", "weight": 0.3, "policy": {"kind": "baseline"}}, ...]}

and a cell's policy is one of

- ``{"kind": "baseline"}`` -- always ``treatments[0]``;
- ``{"kind": "uniform", "over": [...] | null}`` -- uniform over a set (null: every treatment);
- ``{"kind": "thompson", "allocation": {treatment: weight}}`` -- one allocation for everyone;
- ``{"kind": "tree", "features": [...], "nodes": [...]}`` -- a policy tree as readable split rules
  (numeric thresholds, category sets) with a per-leaf allocation;
- ``{"kind": "custom", "class": "module:QualName", "params": {...}}`` -- an operator-defined policy
  that provides ``to_dict()`` and a ``from_dict(params)`` classmethod. An operator-defined policy
  without them cannot be exported: :func:`plan_to_dict` raises a ``TypeError`` naming the cell.
  Reading a plan never imports code: a custom class resolves only through the ``policies``
  registry the caller passes, and a class the registry lacks is a ``ValueError``.

A tree's routing is exactly sklearn's: at a numeric node a visitor goes left when its value, held
at float32 precision as sklearn holds it, is ``<= threshold``; at a categorical node it goes right
when its category is in ``right_categories`` and left otherwise (unseen categories go left, as
the integer coding sklearn was fitted on sends them). A plan read back with :func:`plan_from_dict`
routes identically: the same ``assign`` result for the same rng.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pytyche._validation import invalid, violated, wrong_type
from pytyche.experiment.cells import Cell
from pytyche.experiment.policies import BaselinePolicy, ThompsonPolicy, TreePolicy, UniformPolicy

__all__ = [
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "SplitTree",
    "plan_to_dict",
    "plan_from_dict",
    "plan_to_json",
    "plan_from_json",
    "plan_to_sql",
    "policy_to_dict",
    "policy_from_dict",
    "cell_to_dict",
    "cell_from_dict",
]

PLAN_FORMAT = "pytyche.next_round_plan"
PLAN_VERSION = 1


def _py(value: Any) -> Any:
    """A JSON-safe Python scalar (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class SplitTree:
    """A binary decision tree read from a plan's JSON: routes visitors to leaf ids.

    Built from the ``features`` and ``nodes`` of a ``"tree"`` policy (see the module docstring);
    :meth:`leaf_of` routes a visitors frame, :meth:`apply` a coded matrix (categoricals as codes
    into the feature's ``categories``, the way :class:`~pytyche.contracts.PolicyTreeResult` codes
    them), so it can stand in for the fitted sklearn tree of a restored policy tree.

    Parameters
    ----------
    features
        ``[{"name": ..., "type": "numeric" | "categorical", "categories": [...]}]`` in the tree's
        column order (``categories`` only for categorical features, in code order).
    nodes
        ``[{"id": i, "feature": f, "threshold": t, "left": l, "right": r}`` (numeric),
        ``{"id": i, "feature": f, "right_categories": [...], "left": l, "right": r}``
        (categorical), ``{"id": i, "leaf": true, ...}`` (leaf)``]``; node 0 is the root.
    """

    def __init__(self, features: Sequence[Mapping[str, Any]], nodes: Sequence[Mapping[str, Any]]) -> None:
        w = "SplitTree"
        self.features = [dict(f) for f in features]
        names = [f.get("name") for f in self.features]
        if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
            raise invalid("features", w, "a list of {'name', 'type'} with unique non-empty names", names)
        for f in self.features:
            if f.get("type") not in ("numeric", "categorical"):
                raise invalid("features", w, "feature types 'numeric' or 'categorical'", f.get("type"))
        self.feature_names = tuple(names)
        self._index = {n: j for j, n in enumerate(names)}
        by_id: dict[int, dict[str, Any]] = {}
        for node in nodes:
            if not isinstance(node, Mapping) or "id" not in node:
                raise invalid("nodes", w, "a list of node objects with an 'id'", node)
            by_id[int(node["id"])] = dict(node)
        if 0 not in by_id:
            raise invalid("nodes", w, "a list holding the root node (id 0)", sorted(by_id))
        for i, node in by_id.items():
            if node.get("leaf"):
                continue
            for side in ("left", "right"):
                if int(node.get(side, -1)) not in by_id:
                    raise invalid("nodes", w, f"a tree whose node {i} has a valid {side!r} child", node.get(side))
            f = node.get("feature")
            if f not in self._index:
                raise invalid("nodes", w, f"splits on the declared features {list(names)}", f)
            kind = self.features[self._index[f]]["type"]
            if kind == "numeric" and not isinstance(node.get("threshold"), (int, float)):
                raise invalid("nodes", w, f"a numeric threshold at node {i}", node.get("threshold"))
            if kind == "categorical" and not isinstance(node.get("right_categories"), list):
                raise invalid("nodes", w, f"a 'right_categories' list at node {i}", node.get("right_categories"))
        self.nodes = by_id

    @property
    def leaf_ids(self) -> list[int]:
        return sorted(i for i, n in self.nodes.items() if n.get("leaf"))

    def _walk(self, n: int, right_of: Any) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        stack = [(0, np.arange(n))]
        while stack:
            i, rows = stack.pop()
            node = self.nodes[i]
            if node.get("leaf"):
                out[rows] = i
                continue
            if rows.size == 0:
                continue
            right = right_of(node, rows)
            stack.append((int(node["left"]), rows[~right]))
            stack.append((int(node["right"]), rows[right]))
        return out

    def leaf_of(self, frame: pd.DataFrame) -> np.ndarray:
        """Leaf id of each row of a visitors frame (raw feature values)."""
        if not isinstance(frame, pd.DataFrame):
            raise wrong_type("frame", "SplitTree.leaf_of", "a pandas DataFrame", frame)
        missing = [f for f in self.feature_names if f not in frame.columns]
        if missing:
            raise invalid("frame", "SplitTree.leaf_of", f"a frame with the tree's features {list(self.feature_names)}", f"missing {missing}", show=False)
        cols: dict[str, np.ndarray] = {}
        for f in self.features:
            v = frame[f["name"]].to_numpy()
            # sklearn holds X as float32 and compares it with the float64 threshold
            cols[f["name"]] = v.astype(np.float32).astype(np.float64) if f["type"] == "numeric" else v

        def right_of(node: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
            v = cols[node["feature"]][rows]
            if "right_categories" in node:
                return np.asarray(pd.Series(v).isin(node["right_categories"]).to_numpy(), dtype=bool)
            return ~(v <= float(node["threshold"]))

        return self._walk(len(frame), right_of)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Leaf id of each row of a coded ``(n, p)`` matrix in :attr:`feature_names` order."""
        x = np.asarray(x, dtype=np.float64)
        xs = x.astype(np.float32).astype(np.float64)
        right_codes: dict[int, np.ndarray] = {}
        for i, node in self.nodes.items():
            if "right_categories" in node:
                cats = self.features[self._index[node["feature"]]].get("categories", [])
                right_codes[i] = np.array([cats.index(c) for c in node["right_categories"] if c in cats], dtype=np.float64)

        def right_of(node: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
            v = xs[rows, self._index[node["feature"]]]
            if "right_categories" in node:
                return np.isin(v, right_codes[int(node["id"])])
            return ~(v <= float(node["threshold"]))

        return self._walk(x.shape[0], right_of)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [dict(f) for f in self.features], "nodes": [dict(self.nodes[i]) for i in sorted(self.nodes)]}


def _tree_parts(policy: TreePolicy) -> tuple[Any, list[str], dict[str, list]]:
    """(fitted tree, feature names in column order, categories) of a TreePolicy."""
    tree = policy.tree
    if hasattr(tree, "leaf_of") and hasattr(tree, "feature_names"):  # PolicyTreeResult or SplitTree
        if isinstance(tree, SplitTree):
            return tree, list(tree.feature_names), {}
        return tree.tree, list(tree.feature_names), {k: list(v) for k, v in dict(tree.categories).items()}
    return tree, list(policy.features or ()), {k: list(v) for k, v in policy.categories.items()}


def _rule_text(conds: list[str]) -> str:
    return " and ".join(conds) if conds else "all visitors"


def tree_to_dict(policy: TreePolicy) -> dict[str, Any]:
    """The ``features`` and ``nodes`` of a TreePolicy (leaves carry their allocation and rule)."""
    fitted, names, categories = _tree_parts(policy)
    if isinstance(fitted, SplitTree):
        d = fitted.to_dict()
        for node in d["nodes"]:
            if node.get("leaf"):
                node["allocation"] = {t: float(w) for t, w in policy.allocation_map.get(int(node["id"]), {}).items()}
        return {"kind": "tree", **d}
    t = getattr(fitted, "tree_", None)
    if t is None:
        raise wrong_type("tree", "plan export", "a fitted sklearn tree (with tree_)", fitted)
    features = []
    for f in names:
        if f in categories:
            features.append({"name": f, "type": "categorical", "categories": [_py(c) for c in categories[f]]})
        else:
            features.append({"name": f, "type": "numeric"})
    left, right, feat, thr = t.children_left, t.children_right, t.feature, t.threshold
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[int, list[str]]] = [(0, [])]
    while stack:
        i, conds = stack.pop()
        if left[i] == -1:
            alloc = policy.allocation_map.get(int(i))
            nodes.append({"id": int(i), "leaf": True, "rule": _rule_text(conds),
                          "allocation": None if alloc is None else {k: float(v) for k, v in alloc.items()}})
            continue
        name = names[int(feat[i])]
        node: dict[str, Any] = {"id": int(i), "feature": name, "left": int(left[i]), "right": int(right[i])}
        if name in categories:
            cats = categories[name]
            codes = np.arange(len(cats), dtype=np.float64)
            go_right = ~(codes.astype(np.float32).astype(np.float64) <= float(thr[i]))
            node["left_categories"] = [_py(c) for c, r in zip(cats, go_right) if not r]
            node["right_categories"] = [_py(c) for c, r in zip(cats, go_right) if r]
            lc = f"{name} not in {{{', '.join(map(str, node['right_categories']))}}}"
            rc = f"{name} in {{{', '.join(map(str, node['right_categories']))}}}"
        else:
            node["threshold"] = float(thr[i])
            lc, rc = f"{name} <= {float(thr[i]):.6g}", f"{name} > {float(thr[i]):.6g}"
        nodes.append(node)
        stack.append((int(right[i]), conds + [rc]))
        stack.append((int(left[i]), conds + [lc]))
    nodes.sort(key=lambda n: n["id"])
    return {"kind": "tree", "features": features, "nodes": nodes}


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def policy_to_dict(policy: Any, where: str = "plan export") -> dict[str, Any]:
    """One policy as a JSON-ready dict (see the module docstring for the kinds)."""
    if type(policy) is BaselinePolicy:
        return {"kind": "baseline"}
    if type(policy) is UniformPolicy:
        return {"kind": "uniform", "over": None if policy.over is None else list(policy.over)}
    if type(policy) is ThompsonPolicy:
        return {"kind": "thompson", "allocation": {t: float(w) for t, w in policy.allocation.items()}}
    if type(policy) is TreePolicy:
        return tree_to_dict(policy)
    to_dict = getattr(policy, "to_dict", None)
    from_dict = getattr(type(policy), "from_dict", None)
    if not callable(to_dict) or not callable(from_dict):
        raise violated(
            "'policy'", where,
            "be a shipped policy (BaselinePolicy, UniformPolicy, ThompsonPolicy, TreePolicy) or an operator-defined "
            f"policy providing to_dict() and a from_dict(params) classmethod. Got {type(policy).__name__} instead.",
            exc=TypeError,
        )
    params = to_dict()
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{type(policy).__name__}.to_dict() must return JSON-serialisable data ({where}): {exc}") from None
    return {"kind": "custom", "class": _class_path(policy), "params": params}


def _resolve_class(path: str, policies: Mapping[str, type] | Sequence[type] | None, where: str) -> type:
    """The operator-defined policy class named ``path``, looked up in the caller's registry only.

    A plan or a saved experiment is data: it never chooses a module to import. ``path`` is matched
    against the registry's keys (``"module:QualName"`` or the bare class name), or, for a sequence
    of classes, against each class's ``module:QualName`` and ``__qualname__``.
    """
    registry: dict[str, Any] = {}
    if isinstance(policies, Mapping):
        registry = dict(policies)
    elif policies is not None and not isinstance(policies, (str, bytes)):
        for cls in policies:
            if isinstance(cls, type):
                registry[f"{cls.__module__}:{cls.__qualname__}"] = cls
                registry[cls.__qualname__] = cls
    elif policies is not None:
        raise wrong_type("policies", where, "a mapping name -> class or a sequence of classes", policies)
    obj = next((registry[k] for k in (path, path.split(":")[-1]) if k in registry), None)
    if obj is None:
        known = sorted(registry)
        raise violated(
            f"custom policy class {path!r}", where,
            "be in the 'policies' registry the caller passes (a mapping name -> class, or a sequence of classes): "
            "a plan never imports the code it names. "
            + (f"The registry holds {known}." if known else "No registry was passed."),
        )
    if not isinstance(obj, type) or not callable(getattr(obj, "from_dict", None)):
        raise violated(f"custom policy class {path!r}", where, "be a class with a from_dict(params) classmethod.")
    return obj


def policy_from_dict(data: Any, where: str = "plan import", policies: Mapping[str, type] | Sequence[type] | None = None) -> Any:
    """Rebuild a policy from :func:`policy_to_dict`'s output."""
    if not isinstance(data, Mapping) or "kind" not in data:
        raise invalid("policy", where, "an object with a 'kind'", data)
    kind = data["kind"]
    if kind == "baseline":
        return BaselinePolicy()
    if kind == "uniform":
        return UniformPolicy(over=data.get("over"))
    if kind == "thompson":
        return ThompsonPolicy(data["allocation"])
    if kind == "tree":
        tree = SplitTree(data["features"], data["nodes"])
        alloc = {int(n["id"]): n["allocation"] for n in data["nodes"] if n.get("leaf") and n.get("allocation") is not None}
        return TreePolicy(tree, alloc)
    if kind == "custom":
        cls = _resolve_class(str(data.get("class", "")), policies, where)
        return cls.from_dict(data.get("params"))
    raise invalid("policy", where, "a policy kind among 'baseline', 'uniform', 'thompson', 'tree', 'custom'", kind)


def cell_to_dict(cell: Cell, where: str = "plan export") -> dict[str, Any]:
    return {"id": cell.id, "weight": float(cell.weight), "policy": policy_to_dict(cell.policy, f"{where} (cell {cell.id!r})")}


def cell_from_dict(data: Any, where: str = "plan import", policies: Mapping[str, type] | Sequence[type] | None = None) -> Cell:
    if not isinstance(data, Mapping) or not {"id", "weight", "policy"} <= set(data):
        raise invalid("cells", where, "objects with 'id', 'weight' and 'policy'", data)
    return Cell(data["id"], policy_from_dict(data["policy"], f"{where} (cell {data['id']!r})", policies), float(data["weight"]))


def plan_to_dict(plan: Any) -> dict[str, Any]:
    """A plan as a JSON-ready dict (schema: ``docs/plan_schema.md``)."""
    where = "NextRoundPlan.to_json"
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "round_idx": int(plan.round_idx),
        "n_visitors": None if plan.n_visitors is None else int(plan.n_visitors),
        "treatments": list(plan.treatments),
        "active_treatments": list(plan.active_treatments),
        "dropped_treatments": list(plan.dropped_treatments),
        "rationale": plan.rationale,
        "cells": [cell_to_dict(c, where) for c in plan.cells],
    }


def plan_from_dict(data: Any, policies: Mapping[str, type] | Sequence[type] | None = None) -> Any:
    """Rebuild a :class:`NextRoundPlan` from :func:`plan_to_dict`'s output."""
    from pytyche.experiment.plan import NextRoundPlan

    where = "NextRoundPlan.from_json"
    if not isinstance(data, Mapping):
        raise wrong_type("text", where, "a JSON object", data)
    if data.get("format") != PLAN_FORMAT:
        raise invalid("text", where, f"a plan document with format {PLAN_FORMAT!r}", data.get("format"))
    version = data.get("version")
    if not isinstance(version, int) or version > PLAN_VERSION or version < 1:
        raise invalid("text", where, f"a plan of format version 1..{PLAN_VERSION} (a newer pytyche wrote it?)", version)
    missing = [k for k in ("round_idx", "treatments", "active_treatments", "dropped_treatments", "rationale", "cells") if k not in data]
    if missing:
        raise invalid("text", where, "a plan document with every required key", f"missing {missing}", show=False)
    cells = tuple(cell_from_dict(c, where, policies) for c in data["cells"])
    return NextRoundPlan(
        cells,
        tuple(data["active_treatments"]),
        tuple(data["dropped_treatments"]),
        data["rationale"],
        data["round_idx"],
        data.get("n_visitors"),
        tuple(data["treatments"]),
    )


def plan_to_json(plan: Any, indent: int | None = 2) -> str:
    return json.dumps(plan_to_dict(plan), indent=indent, allow_nan=False)


def plan_from_json(text: Any, policies: Mapping[str, type] | Sequence[type] | None = None) -> Any:
    if not isinstance(text, (str, bytes, bytearray)):
        raise wrong_type("text", "NextRoundPlan.from_json", "a JSON str", text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise violated("'text' parameter", "NextRoundPlan.from_json", f"be valid JSON. Got a parse error instead: {exc}.") from None
    return plan_from_dict(data, policies)


# ---- SQL -------------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _literal(value: Any) -> str:
    value = _py(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"A plan exported to SQL must hold finite numbers. Got {value!r}.")
        return repr(value)
    raise TypeError(f"Cannot write {type(value).__name__} value {value!r} as an SQL literal.")


def _leaf_case(tree: Mapping[str, Any], node_id: int = 0) -> str:
    nodes = {int(n["id"]): n for n in tree["nodes"]}

    def expr(i: int) -> str:
        n = nodes[i]
        if n.get("leaf"):
            return str(i)
        col = _ident(n["feature"])
        if "right_categories" in n:
            if not n["right_categories"]:
                return expr(int(n["left"]))
            cond = f"{col} IN ({', '.join(_literal(c) for c in n['right_categories'])})"
            return f"CASE WHEN {cond} THEN {expr(int(n['right']))} ELSE {expr(int(n['left']))} END"
        return f"CASE WHEN {col} <= {_literal(float(n['threshold']))} THEN {expr(int(n['left']))} ELSE {expr(int(n['right']))} END"

    return expr(node_id)


def _fixed_row(alloc: Mapping[str, float], treatments: Sequence[str]) -> list[float]:
    row = np.array([float(alloc.get(t, 0.0)) if float(alloc.get(t, 0.0)) > 0 else 0.0 for t in treatments])
    return list(row / row.sum())


def plan_to_sql(plan: Any, table: str = "visitors") -> str:
    """A ``SELECT`` that adds the plan's routing probabilities to every row of ``table``.

    The query (standard SQL: ``WITH``, ``CASE``, ``IN``; tested on SQLite) returns every column of
    ``table`` plus

    - ``leaf__<cell>`` for every tree cell: the visitor's leaf id (a nested ``CASE``);
    - ``p__<cell>__<treatment>`` for every cell and treatment: the probability the cell's policy
      gives the treatment (what to record as the visitor's propensity when routed by that cell);
    - ``p__<treatment>``: the probability over the whole plan, ``sum_c weight_c * p__<c>__<t>``;
    - ``w__<cell>``: the cell's share of traffic.

    The router picks a cell by ``w__<cell>`` and then a treatment by ``p__<cell>__<treatment>``
    (e.g. from a hash of the visitor id), records the cell id and the cell's probabilities.
    Numeric comparisons are in the database's double precision; sklearn's float32 view of a
    feature can differ from it only for values within float32 rounding (about 1e-7 relative) of a
    split threshold. Operator-defined policies cannot be written as SQL (``ValueError``).
    """
    where = "NextRoundPlan.to_sql"
    if not isinstance(table, str) or not table.strip():
        raise invalid("table", where, "a non-empty table name", table)
    d = plan_to_dict(plan)
    treatments = d["treatments"]
    weights = np.array([c["weight"] for c in d["cells"]], dtype=np.float64)
    weights = weights / weights.sum()
    leaf_cols, prob_cols, mix = [], [], {t: [] for t in treatments}
    for c, w in zip(d["cells"], weights):
        pol, cid = c["policy"], c["id"]
        kind = pol["kind"]
        if kind == "custom":
            raise ValueError(
                f"The cell {cid!r} of {where} uses the operator-defined policy {pol['class']!r}, which has no SQL form. "
                "Route that cell in Python (NextRoundPlan.assign) or replace it with a shipped policy."
            )
        exprs: dict[str, str] = {}
        if kind == "baseline":
            exprs = {t: _literal(1.0 if j == 0 else 0.0) for j, t in enumerate(treatments)}
        elif kind == "uniform":
            over = treatments if pol["over"] is None else pol["over"]
            exprs = {t: _literal(1.0 / len(over) if t in over else 0.0) for t in treatments}
        elif kind == "thompson":
            row = _fixed_row(pol["allocation"], treatments)
            exprs = {t: _literal(float(p)) for t, p in zip(treatments, row)}
        else:  # tree
            leaf_col = _ident(f"leaf__{cid}")
            leaf_cols.append(f"{_leaf_case(pol)} AS {leaf_col}")
            leaves = [n for n in pol["nodes"] if n.get("leaf")]
            for j, t in enumerate(treatments):
                whens = " ".join(
                    f"WHEN {int(n['id'])} THEN {_literal(float(_fixed_row(n['allocation'], treatments)[j]))}"
                    for n in leaves if n.get("allocation")
                )
                exprs[t] = f"CASE {leaf_col} {whens} END"
        prob_cols.append(f"{_literal(float(w))} AS {_ident(f'w__{cid}')}")
        for t in treatments:
            col = _ident(f"p__{cid}__{t}")
            prob_cols.append(f"{exprs[t]} AS {col}")
            mix[t].append(f"{_literal(float(w))} * {col}")
    inner = "SELECT *" + "".join(f",\n    {e}" for e in leaf_cols) + f"\n  FROM {_ident(table)}"
    probs = f"SELECT *" + "".join(f",\n    {e}" for e in prob_cols) + "\n  FROM routed"
    outer = "SELECT *" + "".join(f",\n  {' + '.join(mix[t])} AS {_ident(f'p__{t}')}" for t in treatments) + "\nFROM probs"
    return f"WITH routed AS (\n  {inner}\n),\nprobs AS (\n  {probs}\n)\n{outer}"
