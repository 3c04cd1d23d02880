"""One name per meaning: the credibility threshold and its keyword."""

from __future__ import annotations

import warnings

import pytest

import pytyche as pt
from pytyche.analysis.capabilities import CREDIBLE_STABILITY
from pytyche.contracts.results import is_credible


def _fresh_experiment():
    return pt.sequential_experiment(
        generator=lambda round_idx, plan: None,
        schedule=pt.FixedSchedule(per_round=100, n_rounds=1),
        treatments=["control", "b"],
    )


def test_credible_threshold_is_one_constant():
    assert CREDIBLE_STABILITY == 0.80
    assert is_credible(0.80) and not is_credible(0.79) and not is_credible(float("nan"))
    assert is_credible(0.5, threshold=0.5)


def test_experiment_threshold_keyword_matches_the_posterior_and_the_old_one_warns():
    exp = _fresh_experiment()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert exp.has_credible_segments(threshold=0.5) is False  # no round yet
    with pytest.warns(DeprecationWarning, match="stability_threshold"):
        assert exp.has_credible_segments(stability_threshold=0.5) is False
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="'stability_threshold' parameter"):
        exp.has_credible_segments(stability_threshold=1.5)
    with pytest.raises(ValueError, match="'threshold' parameter of SequentialExperiment.has_credible_segments"):
        exp.has_credible_segments(1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        exp.has_credible_segments(bogus=1)


def test_concepts_page_names_paths_that_exist():
    """docs/concepts.md says where each concept lives: every path it names is in the tree."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "concepts.md").read_text()
    paths = set(re.findall(r"`((?:pytyche|sweeps|dgps|tests)/[\w/.]*)`", text))
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (root / p).exists())
    assert not missing, missing
