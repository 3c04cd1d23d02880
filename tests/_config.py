"""The one tiny BCF configuration shared by the loop-level tests (experiment, viz, sweeps, README).

Same trees, chains and a single row bucket (``bucket_min=8192``) means every test module reuses the
same compiled MCMC programs (in-process and through the persistent cache in ``.jax_cache``), so the
suite pays for each outcome kind's compilation once.
"""

from pytyche.bcf.config import GPUBCFConfig

TINY = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=20, num_draws=20, num_chains=1, bucket_min=8192)
