"""Visualization primitives (matplotlib, imported lazily on first call).

``import pytyche`` never imports matplotlib; the five functions below import it when first called.
Each static primitive takes ``ax=None`` (a new figure) or an axes to draw into, and returns the axes.
"""

from pytyche.viz.calibration import plot_calibration
from pytyche.viz.cells import plot_cells
from pytyche.viz.evolution import experiment_evolution_gif
from pytyche.viz.policy_tree import plot_policy_tree
from pytyche.viz.segments import plot_segment_intervals

__all__ = ["experiment_evolution_gif", "plot_calibration", "plot_cells", "plot_policy_tree", "plot_segment_intervals"]
