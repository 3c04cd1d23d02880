"""``interaction``: a conversion effect that exists only where two features meet.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features: ``device`` (desktop / mobile,
50/50), ``channel`` (email 30% / organic 40% / paid 30%), ``hour`` (0-23, uniform, irrelevant)
and ``n_noise`` irrelevant ``noise_j ~ N(0, 1)``. Treatments ``control``, ``treatment``; metric
``conversion_rate`` (binary).

- control ``p0 = 0.08 · conversion_scale + 0.03 · [channel = email]``;
- treatment ``p1 = p0 + s · (0.06 · [mobile and paid] - 0.02 · [desktop and email])``,
  ``s = effect_scale`` in [0, 2].

Neither feature alone carries the effect's sign: mobile visitors gain only from paid traffic,
email visitors lose only on desktop. The oracle treats mobile-paid visitors (15%), is
indifferent on the 70% with no effect, and keeps desktop-email visitors (15%) on control.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ConversionTemplate, feature_template, FeatureTemplate, param, real, Surface

_CHANNELS = ("email", "organic", "paid")


@dataclass(frozen=True)
class Interaction(FeatureTemplate, ConversionTemplate):
    """See the module docstring."""

    effect_scale: float = param(1.0, real(low=0.0, high=2.0))
    conversion_scale: float = param(1.0, real(low=0.0, low_open=True, high=5.0))

    name = "interaction"
    treatments = ("control", "treatment")

    features = {"device": "categorical", "channel": "categorical", "hour": "numeric"}

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "device": np.where(rng.random(n) < 0.5, "desktop", "mobile").astype(object),
                "channel": np.asarray(_CHANNELS, dtype=object)[rng.choice(3, size=n, p=[0.3, 0.4, 0.3])],
                "hour": rng.integers(0, 24, size=n).astype(np.float64),
            }
        )

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        dev = visitors["device"].to_numpy()
        chan = visitors["channel"].to_numpy()
        p0 = 0.08 * self.conversion_scale + 0.03 * (chan == "email")
        lift = self.effect_scale * (0.06 * ((dev == "mobile") & (chan == "paid")) - 0.02 * ((dev == "desktop") & (chan == "email")))
        return Surface(p=np.clip(np.column_stack([p0, p0 + lift]), 0.001, 0.999))


make = feature_template(Interaction)
