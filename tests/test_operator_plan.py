"""Plan export: NextRoundPlan.to_json / from_json / to_sql (no BCF fits).

Round trips must route identically (same ``assign`` for the same rng) for every policy kind, and
the SQL must give, row for row, the leaves and probabilities ``assign`` uses.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

from dgps.base import archetype_visitors
from pytyche.contracts import PolicyTreeResult
from pytyche.experiment import (
    BaselinePolicy,
    Cell,
    NextRoundPlan,
    Policy,
    ThompsonPolicy,
    TreePolicy,
    UniformPolicy,
    sample_arms,
)
from pytyche.experiment.plan_io import SplitTree

from _policies import MobileGetsLast

T = ("control", "low_promo", "free_ship")
CATS = {"device": ["desktop", "mobile", "tablet"], "channel": ["email", "organic", "paid"]}
FEATS = ("device", "tenure_months", "visits_30d", "channel")


def _coded(frame: pd.DataFrame) -> np.ndarray:
    cols = []
    for f in FEATS:
        if f in CATS:
            cols.append(pd.Categorical(frame[f], categories=CATS[f]).codes.astype(np.float64))
        else:
            cols.append(frame[f].to_numpy(dtype=np.float64))
    return np.column_stack(cols)


def _policy_tree(seed: int, depth: int = 3) -> PolicyTreeResult:
    """A sklearn tree fitted the way the analysis fits one (coded categoricals), with allocations."""
    rng = np.random.default_rng(seed)
    visitors, clusters = archetype_visitors(rng, 3000)
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=100, random_state=seed).fit(_coded(visitors), clusters % 3)
    leaves = np.flatnonzero(tree.tree_.children_left == -1)
    alloc = {}
    for leaf in leaves:
        w = rng.dirichlet(np.ones(3))
        w[rng.integers(3)] = 0.0 if rng.random() < 0.3 else w[0]  # some leaves drop a treatment
        w = w / w.sum()
        alloc[int(leaf)] = {t: float(x) for t, x in zip(T, w)}
    return PolicyTreeResult(tree, (), alloc, {}, None, T, FEATS, CATS)  # type: ignore[arg-type]


def _plan(seed: int) -> NextRoundPlan:
    tree = _policy_tree(seed)
    cells = (
        Cell("control", BaselinePolicy(), 0.15),
        Cell("explore", UniformPolicy(over=["control", "free_ship"]), 0.2),
        Cell("thompson", ThompsonPolicy({"control": 0.1, "low_promo": 0.3, "free_ship": 0.6}), 0.1),
        Cell("optimized", TreePolicy(tree, tree.allocation_map), 0.55),
    )
    return NextRoundPlan(cells, T, (), f"plan {seed}", 1, 2000, T)


def _same_assignment(a, b):
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.arm, b.arm)
    np.testing.assert_array_equal(a.probs, b.probs)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_json_round_trip_routes_identically(seed):
    plan = _plan(seed % 1000)
    text = plan.to_json()
    back = NextRoundPlan.from_json(text)
    visitors, _ = archetype_visitors(np.random.default_rng(seed), 1500)
    _same_assignment(plan.assign(visitors, np.random.default_rng(seed)), back.assign(visitors, np.random.default_rng(seed)))
    assert back.to_json() == text  # a second round trip is a fixed point
    assert (back.round_idx, back.n_visitors, back.treatments, back.rationale) == (1, 2000, T, f"plan {seed % 1000}")


def test_json_is_readable_split_rules():
    plan = _plan(3)
    doc = json.loads(plan.to_json())
    assert doc["format"] == "pytyche.next_round_plan" and doc["version"] == 1
    kinds = [c["policy"]["kind"] for c in doc["cells"]]
    assert kinds == ["baseline", "uniform", "thompson", "tree"]
    tree = doc["cells"][3]["policy"]
    internal = [n for n in tree["nodes"] if not n.get("leaf")]
    leaves = [n for n in tree["nodes"] if n.get("leaf")]
    assert internal and leaves
    for n in internal:
        assert ("threshold" in n) != ("right_categories" in n)
        if "right_categories" in n:  # category sets partition the feature's categories
            assert sorted(n["left_categories"] + n["right_categories"]) == sorted(CATS[n["feature"]])
    for n in leaves:
        assert abs(sum(n["allocation"].values()) - 1.0) < 1e-9 and isinstance(n["rule"], str)
    # each leaf's readable rule selects exactly the visitors the tree routes there
    visitors, _ = archetype_visitors(np.random.default_rng(0), 2000)
    routed = SplitTree(tree["features"], tree["nodes"]).leaf_of(visitors)
    np.testing.assert_array_equal(routed, plan.cells[3].policy.tree.leaf_of(visitors))


def test_raw_sklearn_tree_policy_round_trips():
    visitors, clusters = archetype_visitors(np.random.default_rng(1), 2000)
    x = visitors[["visits_30d", "tenure_months"]]
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, clusters % 2)
    leaves = np.flatnonzero(tree.tree_.children_left == -1)
    pol = TreePolicy(tree, {int(l): {"control": 0.5, "free_ship": 0.5} if i % 2 else {"low_promo": 1.0} for i, l in enumerate(leaves)})
    plan = NextRoundPlan((Cell("opt", pol, 1.0),), T, (), "", 0, None, T)
    back = NextRoundPlan.from_json(plan.to_json())
    _same_assignment(plan.assign(visitors, np.random.default_rng(5)), back.assign(visitors, np.random.default_rng(5)))


class Serializable(MobileGetsLast):
    """An operator-defined policy that opts into export."""

    def __init__(self, share: float = 0.8):
        self.share = share

    def to_dict(self):
        return {"share": self.share}

    @classmethod
    def from_dict(cls, params):
        return cls(**params)


def test_operator_defined_policies_export_only_with_to_dict():
    cells = (Cell("control", BaselinePolicy(), 0.5), Cell("hyp", MobileGetsLast(), 0.5))
    plan = NextRoundPlan(cells, T, (), "", 0, 100, T)
    with pytest.raises(TypeError, match="to_dict.*Got MobileGetsLast instead"):
        plan.to_json()
    ok = NextRoundPlan((cells[0], Cell("hyp", Serializable(0.7), 0.5)), T, (), "", 0, 100, T)
    doc = json.loads(ok.to_json())
    assert doc["cells"][1]["policy"] == {"kind": "custom", "class": "test_operator_plan:Serializable", "params": {"share": 0.7}}
    back = NextRoundPlan.from_json(ok.to_json(), policies={"Serializable": Serializable})
    assert isinstance(back.cells[1].policy, Serializable) and back.cells[1].policy.share == 0.7
    visitors, _ = archetype_visitors(np.random.default_rng(2), 500)
    _same_assignment(ok.assign(visitors, np.random.default_rng(0)), back.assign(visitors, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="no SQL form"):
        ok.to_sql()


HOSTILE = """
import pathlib
pathlib.Path(__file__).with_name("imported.marker").write_text("module-level code ran")

class Evil:
    @classmethod
    def from_dict(cls, params):
        pathlib.Path(__file__).with_name("from_dict.marker").write_text("ran")
        return cls()
"""


def test_a_hostile_plan_never_imports_the_module_it_names(tmp_path, monkeypatch):
    """A plan naming an importable module with side effects (and the stdlib's ``this``, which
    prints on import) is refused without importing either, with or without a registry."""
    import sys

    (tmp_path / "pytyche_hostile_mod.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = json.loads(_plan(0).to_json())
    for path in ("pytyche_hostile_mod:Evil", "this:Evil", "os:system"):
        doc["cells"][0]["policy"] = {"kind": "custom", "class": path, "params": {}}
        for policies in (None, {"Serializable": Serializable}, [Serializable]):
            with pytest.raises(ValueError, match="never imports the code it names"):
                NextRoundPlan.from_json(json.dumps(doc), policies=policies)
    assert "pytyche_hostile_mod" not in sys.modules
    assert not (tmp_path / "imported.marker").exists() and not (tmp_path / "from_dict.marker").exists()
    # the caller's registry, and only it, resolves the class (a sequence of classes works too)
    doc["cells"][0]["policy"] = {"kind": "custom", "class": "test_operator_plan:Serializable", "params": {"share": 0.6}}
    back = NextRoundPlan.from_json(json.dumps(doc), policies=[Serializable])
    assert isinstance(back.cells[0].policy, Serializable) and back.cells[0].policy.share == 0.6


def test_from_json_errors_are_clear():
    good = json.loads(_plan(0).to_json())
    with pytest.raises(ValueError, match="valid JSON"):
        NextRoundPlan.from_json("{not json")
    with pytest.raises(ValueError, match="format"):
        NextRoundPlan.from_json(json.dumps({**good, "format": "something.else"}))
    with pytest.raises(ValueError, match="newer pytyche"):
        NextRoundPlan.from_json(json.dumps({**good, "version": 99}))
    with pytest.raises(ValueError, match="missing \\['cells'\\]"):
        NextRoundPlan.from_json(json.dumps({k: v for k, v in good.items() if k != "cells"}))
    bad = json.loads(json.dumps(good))
    bad["cells"][0]["policy"] = {"kind": "mystery"}
    with pytest.raises(ValueError, match="policy kind"):
        NextRoundPlan.from_json(json.dumps(bad))
    with pytest.raises(ValueError, match="'no_such_module_xyz:Thing'.*registry.*No registry was passed"):
        bad["cells"][0]["policy"] = {"kind": "custom", "class": "no_such_module_xyz:Thing", "params": {}}
        NextRoundPlan.from_json(json.dumps(bad))
    with pytest.raises(ValueError, match=r"registry.*holds \['Serializable'\]"):
        NextRoundPlan.from_json(json.dumps(bad), policies={"Serializable": Serializable})
    with pytest.raises(TypeError, match="'text' parameter"):
        NextRoundPlan.from_json(3)


@pytest.mark.filterwarnings("ignore:Constructing a Categorical")  # the unseen category, on purpose
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sql_gives_the_leaves_and_probabilities_assign_uses(seed):
    plan = _plan(seed)
    visitors, _ = archetype_visitors(np.random.default_rng(100 + seed), 1200)
    visitors.loc[0, "device"] = "smart_tv"  # a category the tree never saw goes left, as in sklearn
    con = sqlite3.connect(":memory:")
    visitors.assign(row_id=np.arange(len(visitors))).to_sql("visitors", con, index=False)
    out = pd.read_sql_query(plan.to_sql("visitors") + " ORDER BY row_id", con)
    con.close()
    tree_cell = plan.cells[3]
    np.testing.assert_array_equal(out["leaf__optimized"].to_numpy(), tree_cell.policy.tree.leaf_of(visitors))
    rng = np.random.default_rng(0)
    mix = np.zeros((len(visitors), len(T)))
    for c in plan.cells:
        _, probs = c.policy.assign(visitors, T, rng)  # every cell's probabilities for every visitor
        sql = out[[f"p__{c.id}__{t}" for t in T]].to_numpy()
        np.testing.assert_allclose(sql, probs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(out[f"w__{c.id}"], c.weight)
        mix += c.weight * probs
    np.testing.assert_allclose(out[[f"p__{t}" for t in T]].to_numpy(), mix, atol=1e-12)
    # and per visitor, the probabilities assign records for the visitor's own cell
    routed = plan.assign(visitors, np.random.default_rng(seed))
    own = np.stack([out[[f"p__{c}__{t}" for t in T]].to_numpy()[i] for i, c in enumerate(routed.cell)])
    np.testing.assert_allclose(own, routed.probs, atol=1e-12)


def test_the_documented_example_is_a_valid_plan():
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "plan_schema.md").read_text()
    example = re.findall(r"```json\n(.*?)```", doc, flags=re.S)[-1]
    plan = NextRoundPlan.from_json(example)
    assert plan.cell_ids == ("control", "explore", "optimized") and plan.n_visitors == 2000
    visitors, _ = archetype_visitors(np.random.default_rng(0), 500)
    routed = plan.assign(visitors, np.random.default_rng(0))
    mobile = (visitors["device"] == "mobile").to_numpy() & (routed.cell == "optimized")
    np.testing.assert_allclose(routed.probs[mobile], [[0.05, 0.05, 0.9]] * int(mobile.sum()))
