"""One atomic writer: fsynced, ordinary permissions, all or nothing; the calibration artifact uses it."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from pytyche._files import atomic_write, atomic_write_text
from pytyche.calibrate import LayeredCalibrationCorrection
from tests.test_calibrate import binomial_records


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_text_gives_ordinary_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "x.txt", "hello\n")
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    path = atomic_write_text(tmp_path / "x.txt", "old")

    def fail(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_correction_to_json_uses_the_shared_writer(tmp_path):
    recs = binomial_records(np.random.default_rng(3), 0.7, reps=10, n_targets=100)
    corr = LayeredCalibrationCorrection.fit(recs, "revenue_per_visitor", 2, "joint")
    path = corr.to_json(tmp_path / "artifact.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert LayeredCalibrationCorrection.from_json(path).to_dict() == corr.to_dict()
