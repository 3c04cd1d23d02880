import pytyche as pt
from dgps.registry import make_generator

exp = pt.sequential_experiment(
    generator=make_generator("clustered_realistic", seed=1),  # sim mode: returns (observed, truth)
    schedule=pt.FixedSchedule(per_round=2000, n_rounds=2),
    treatments=["control", "low_promo", "free_ship"],
    calibration=pt.Calibration.from_sweep("demo_rpv_k3_toy"),  # shipped toy-config artifact, validated held out
    # the toy-sized MCMC the artifact was fitted at (its regime: trees, draws, chains), so this
    # runs in a few minutes on a laptop CPU
    bcf_config=pt.GPUBCFConfig(num_trees_mu=50, num_trees_tau=20, num_burnin=100, num_draws=100,
                               num_chains=2, bucket_min=8192),
)
for result in exp:  # one round per iteration: fit, analyze, plan the next round
    print(result.round_idx, [(c.id, round(c.weight, 2)) for c in result.cells],
          result.truth_comparison.oracle_gap_rpv)
print(exp.summary)
plan = exp.next_recommendation  # cells, active / dropped treatments, rationale
print(plan.rationale)
