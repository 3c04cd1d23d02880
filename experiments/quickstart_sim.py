import pytyche as pt
from dgps.registry import make_generator

exp = pt.sequential_experiment(
    generator=make_generator("clustered_realistic", seed=1),  # sim mode: returns (observed, truth)
    schedule=pt.FixedSchedule(per_round=2000, n_rounds=2),
    treatments=["control", "low_promo", "free_ship"],
    calibration=pt.Calibration.from_sweep("clustered_realistic_v1"),  # shipped R(p) artifact
    # toy-sized MCMC so this runs in about a minute on a laptop CPU; drop it for the defaults
    bcf_config=pt.GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=20, num_draws=20,
                               num_chains=1, bucket_min=8192),
)
for result in exp:  # one round per iteration: fit, analyze, plan the next round
    print(result.round_idx, [(c.id, round(c.weight, 2)) for c in result.cells],
          result.truth_comparison.oracle_gap_rpv)
print(exp.summary)
plan = exp.next_recommendation  # cells, active / dropped treatments, rationale
print(plan.rationale)
