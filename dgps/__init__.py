"""Simulated data-generating processes (DGPs) for sim-mode sequential experiments and sweeps.

Each template builds a ``Generator``: ``generator(round_idx, plan) -> (ObservedExperimentData,
CalibrationTruth)``, routing visitors through the plan's cells and recording propensities. See
:mod:`dgps.base` for the machinery and :mod:`dgps.registry` for ``make_generator(name, **params)``
and ``list_templates()``.
"""

from dgps.base import DGPTemplate, SimGenerator, Surface
from dgps.registry import list_templates, make_generator, template_doc

__all__ = ["DGPTemplate", "SimGenerator", "Surface", "list_templates", "make_generator", "template_doc"]
