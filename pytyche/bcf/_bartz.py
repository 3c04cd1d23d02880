"""The one place pytyche imports bartz: its public names and the private ones the kernel needs.

`pytyche.bcf.kernel` extends `bartz.bcf`'s two-forest step to one forest per arm, which needs
sub-steps bartz does not export (``step_trees``, ``step_leaf_prior_cov_inv``), its chain-axis
helpers and its field marker. Those live in private modules whose paths may change in any bartz
release, so they are imported here and nowhere else; the version canary
(``tests/test_bcf_kernel.py::test_bartz_entry_points_used_by_the_kernel``) checks every name
below against the installed bartz (pin: ``bartz>=0.13,<0.14``). Equinox's private error-mode
switch has its own single home, `pytyche.bcf._eqx_checks`.
"""

from __future__ import annotations

# public API
from bartz.mcmcstep import (
    AutoBatchedReduction,
    AutoOneHotReduction,
    DiagWishart,
    Forest,
    ReductionConfig,
    State,
    Wishart,
    init,
    make_p_nonterminal,
    step,
)
from bartz.grove import traverse_forest
from bartz.prepcovars import GivenSplitsBinner

# private API (bartz 0.13): every import of a private bartz module stands here
from bartz.mcmcstep._axes import chain_vmap_axes
from bartz.mcmcstep._state import initial_prec_tree, scaled_error_cov_inv, vmap_chains
from bartz.mcmcstep._step import step_leaf_prior_cov_inv, step_trees
from bartz._jaxext import field, float32_matmuls

__all__ = [
    'AutoBatchedReduction',
    'AutoOneHotReduction',
    'DiagWishart',
    'Forest',
    'GivenSplitsBinner',
    'ReductionConfig',
    'State',
    'Wishart',
    'chain_vmap_axes',
    'field',
    'float32_matmuls',
    'init',
    'initial_prec_tree',
    'make_p_nonterminal',
    'scaled_error_cov_inv',
    'step',
    'step_leaf_prior_cov_inv',
    'step_trees',
    'traverse_forest',
    'vmap_chains',
]
