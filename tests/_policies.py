"""An operator-defined policy (hypothesis injection) shared by the DGP and experiment tests."""

from __future__ import annotations

import numpy as np

from pytyche.experiment import Policy, sample_arms


class MobileGetsLast(Policy):
    """Operator hypothesis: mobile visitors get the last treatment (80%) or control, others uniform."""

    def assign(self, visitors, treatments, rng):
        k = len(treatments)
        probs = np.full((len(visitors), k), 1.0 / k)
        mobile = (visitors["device"] == "mobile").to_numpy()
        probs[mobile] = 0.0
        probs[mobile, -1] = 0.8
        probs[mobile, 0] = 0.2
        return sample_arms(probs, rng), probs
