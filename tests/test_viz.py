"""pt.viz: every primitive draws real objects, honours ax=, and writes files; matplotlib stays lazy."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import pytyche as pt
from pytyche.calibrate import Calibration, LayeredCalibrationCorrection
from pytyche.contracts import CalibrationRecord

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _config import TINY  # noqa: E402


@pytest.fixture(scope="module")
def history():
    from dgps.registry import make_generator

    gen = make_generator("clustered_realistic", seed=3)
    exp = pt.sequential_experiment(
        generator=gen,
        schedule=pt.FixedSchedule(per_round=3000, n_rounds=2),
        treatments=["control", "low_promo", "free_ship"],
        seed=1,
        bcf_config=TINY,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pt.UncalibratedWarning)
        exp.run_to_completion()
    return exp.history


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(0)
    records = []
    for rep in range(30):
        for q in (0.5, 0.7, 0.8, 0.9, 0.95):
            # intervals 30% too narrow: a Gaussian interval of nominal q covers 2*Phi(0.7 z_q) - 1
            from scipy.stats import norm

            true_cov = 2 * norm.cdf(0.7 * norm.ppf((1 + q) / 2)) - 1
            cov = rng.binomial(200, true_cov) / 200
            records.append(CalibrationRecord(rep, 0, "cate", q, cov, 200, 1.0, "revenue_per_visitor", 3, "joint", 1000))
    corr = LayeredCalibrationCorrection.fit(records, "revenue_per_visitor", 3, "joint")
    return Calibration.from_correction(corr)


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts) + " " + " ".join(t.get_text() for t in ax.get_yticklabels())


def test_plot_cells_labels_and_ax(history):
    cells = history[-1].cells
    fig, ax = plt.subplots()
    out = pt.viz.plot_cells(cells, ax=ax)
    assert out is ax
    text = _texts(ax)
    for c in cells:
        assert str(c.id) in text
    assert len(ax.patches) == len(cells)
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx(sorted(100 * c.weight for c in cells))
    new_ax = pt.viz.plot_cells(history[-1].next_plan)  # a plan works too; ax=None makes a figure
    assert new_ax.figure is not fig
    plt.close("all")
    with pytest.raises(ValueError, match="cells"):
        pt.viz.plot_cells([])


def test_plot_policy_tree_and_segments(history, tmp_path):
    tree = history[-1].analysis.policy_tree
    ax = pt.viz.plot_policy_tree(tree)
    text = _texts(ax)
    for s in tree.segments:
        assert f"segment #{s.id}" in text
    ax.figure.savefig(tmp_path / "tree.png")
    ax2 = pt.viz.plot_segment_intervals(tree.segments)
    labels = _texts(ax2)
    for s in tree.segments:
        assert f"#{s.id}:" in labels
    assert "80% credible interval" in ax2.get_xlabel()
    ax2.figure.savefig(tmp_path / "segments.png")
    assert (tmp_path / "tree.png").stat().st_size > 5000
    plt.close("all")
    with pytest.raises(TypeError, match="tree_policy"):
        pt.viz.plot_policy_tree(object())


def test_plot_calibration(calibration, tmp_path):
    ax = pt.viz.plot_calibration(calibration, reference=calibration)
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("raw R(p)" in lab for lab in labels) and any("reference" in lab for lab in labels)
    # the raw curve lies below the diagonal (intervals too narrow), at ~2*Phi(0.7*z)-1
    raw = next(line for line in ax.get_lines() if "raw R(p)" in line.get_label())
    x, y = raw.get_data()
    assert np.all(np.asarray(y) < np.asarray(x))
    ax.figure.savefig(tmp_path / "cal.png")
    plt.close("all")
    with pytest.raises(ValueError, match="calibrated_posterior"):
        pt.viz.plot_calibration(Calibration.skip())


def test_evolution_gif(history, tmp_path):
    from PIL import Image

    path = pt.viz.experiment_evolution_gif(history, tmp_path / "sub" / "evo.gif", fps=2)
    img = Image.open(path)
    assert img.n_frames == len(history)
    assert img.info["duration"] == 500
    with pytest.raises(ValueError, match="fps"):
        pt.viz.experiment_evolution_gif(history, tmp_path / "x.gif", fps=0)


def test_import_pytyche_does_not_import_matplotlib():
    code = "import sys, pytyche, pytyche.viz; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
