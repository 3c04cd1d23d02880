import numpy as np
import pandas as pd
import pytyche as pt
from pytyche.contracts import ObservedExperimentData, VariantData, VisitorSchema

rng = np.random.default_rng(0)
TREATMENTS = ["control", "promo"]


def fetch_round(round_idx, plan):
    """Real-data mode: route today's visitors through the plan, return what the platform saw."""
    visitors = pd.DataFrame({"age": rng.uniform(18, 70, plan.n_visitors),
                             "device": rng.choice(["mobile", "desktop"], plan.n_visitors)})
    routed = plan.assign(visitors, rng)  # cell by weight, then the cell's policy
    visitors["cell"] = routed.cell
    visitors["propensity"] = routed.probs[:, 1]  # the probabilities the policy actually used
    lift = np.where(visitors["age"] < 40, 1.0, -0.5) * (routed.arm == 1)  # your platform's outcome
    visitors["outcome"] = 10 + lift + rng.normal(size=plan.n_visitors)
    schema = VisitorSchema({"age": "numeric", "device": "categorical"})
    variants = [VariantData(t, visitors[routed.arm == a].reset_index(drop=True))
                for a, t in enumerate(TREATMENTS)]
    return ObservedExperimentData("checkout-test", "order_value", variants, schema), None


exp = pt.sequential_experiment(generator=fetch_round, treatments=TREATMENTS,
                               schedule=pt.FixedSchedule(per_round=1000, n_rounds=2),
                               calibration=pt.Calibration.skip(),
                               bcf_config=pt.GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=20,
                                                          num_draws=20, num_chains=1, bucket_min=8192))
exp.run_to_completion()
for segment in exp.latest.analysis.segments:
    print(segment.rule, segment.gate_estimate, segment.stability_score)
