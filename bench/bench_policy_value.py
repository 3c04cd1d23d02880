"""Coverage of the off-policy (cross-fitted AIPW) policy-value intervals against sim-mode truth.

The scored policy is cross-fitted (each fold scored by the policy learned on the other folds);
each record also keeps the recommended policy's own in-sample contrast against its truth, which
shows the winner's curse the cross-fitting removes. Each replication runs a short sequential experiment (tiny MCMC, the test suite's configuration)
on a DGP template with its own seed and records, per round, the 95% intervals of
``Experiment.policy_value`` (value of the recommended policy, and its contrasts against control
and against uniform allocation) next to the truth from ``PolicyValue.true_values`` (the mean over
the cumulative visitors of ``CalibrationTruth.expected_outcome[i, policy_arm(i)]``).

Run: ``python bench/bench_policy_value.py OUT.jsonl [replications] [template] [visitors] [rounds] [bucket_min]``
(defaults 60, clustered_realistic, 2000, 2, 8192; a smaller ``bucket_min`` pads less and fits faster). One JSON line per (replication, round) is appended
to OUT.jsonl; a rerun skips replications already there, so the sweep resumes. The summary
(coverage with binomial 95% intervals, mean standardized error) is printed at the end and by
``python bench/bench_policy_value.py OUT.jsonl --summary``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from dgps import make_generator
from pytyche.bcf.config import GPUBCFConfig
from pytyche.calibrate import Calibration
from pytyche.experiment import FixedSchedule, sequential_experiment
from pytyche.experiment.rounds import recommended_arms

TINY = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=20, num_draws=20, num_chains=1, bucket_min=8192)


def _z(pairs: list[tuple[float, float]]) -> np.ndarray:
    """Standardized errors; a zero se (the policy is control everywhere: the contrast is exactly 0)
    is left out of the mean z (its interval is the point 0, covered when the truth is 0 too)."""
    return np.array([err / se for err, se in pairs if se > 0])


def summarize(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        print("no records yet")
        return
    reps = len({r["replication"] for r in rows})
    print(f"{len(rows)} (replication, round) records from {reps} replications")
    for rnd in sorted({r["round"] for r in rows}) + [None]:
        sel = [r for r in rows if rnd is None or r["round"] == rnd]
        label = "all rounds" if rnd is None else f"round {rnd}"
        parts = []
        for q in ("value", "vs_control", "vs_uniform"):
            cov = np.array([r[f"{q}_covered"] for r in sel])
            z = _z([(r[q] - r[f"true_{q}"], r[f"{q}_se"]) for r in sel])
            ci = stats.binomtest(int(cov.sum()), cov.size).proportion_ci(0.95)
            parts.append(f"{q}: coverage {cov.mean():.3f} [{ci.low:.3f}, {ci.high:.3f}], mean z {z.mean():+.2f}")
        if sel and "in_sample_vs_control" in sel[0]:
            cov = np.array([r["in_sample_vs_control_covered"] for r in sel])
            z = _z([(r["in_sample_vs_control"] - r["true_recommended_vs_control"], r["in_sample_vs_control_se"]) for r in sel])
            ci = stats.binomtest(int(cov.sum()), cov.size).proportion_ci(0.95)
            parts.append(f"recommended policy in-sample vs_control: coverage {cov.mean():.3f} [{ci.low:.3f}, {ci.high:.3f}], mean z {z.mean():+.2f}"
                         f"; cross-fitted policy agrees with it for {np.mean([r['agreement'] for r in sel]):.0%} of visitors")
        print(f"  {label} (n={len(sel)}): " + "; ".join(parts))


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "--summary":
        summarize(out)
        return
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    template = sys.argv[3] if len(sys.argv) > 3 else "clustered_realistic"
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    config = dataclasses.replace(TINY, bucket_min=int(sys.argv[6])) if len(sys.argv) > 6 else TINY
    done = set()
    if out.exists():
        done = {json.loads(line)["replication"] for line in out.read_text().splitlines() if line.strip()}
    warnings.simplefilter("ignore")
    for rep in range(reps):
        if rep in done:
            continue
        t0 = time.perf_counter()
        gen = make_generator(template, seed=1000 + rep)
        exp = sequential_experiment(generator=gen, schedule=FixedSchedule(n, rounds), treatments=list(gen.treatments),
                                    bcf_config=config, seed=rep, calibration=Calibration.skip())
        lines = []
        try:
            results = list(exp)
        except ValueError as exc:  # e.g. too few converters in a treatment for the hurdle fit
            print(f"replication {rep}: skipped ({exc})", flush=True)
            continue
        for e in results:
            pv = e.policy_value
            tv = pv.true_values(e.cumulative_truth)
            rec = {"replication": rep, "round": e.round_idx, "template": template, "n": pv.n,
                   "policy": pv.policy, "agreement": pv.agreement}
            # the recommended policy's own in-sample contrast, against its own truth (winner's curse)
            rec_arms = recommended_arms(e.posterior, e.policy_tree, e.next_plan.active_treatments)
            eo = np.asarray(e.cumulative_truth.expected_outcome, dtype=np.float64)
            true_rec = float(eo[np.arange(pv.n), rec_arms].mean() - eo[:, 0].mean())
            z = 1.959963984540054
            rec.update({"in_sample_vs_control": pv.in_sample_vs_control, "in_sample_vs_control_se": pv.in_sample_vs_control_se,
                        "true_recommended_vs_control": true_rec,
                        "in_sample_vs_control_covered": bool(abs(pv.in_sample_vs_control - true_rec) <= z * pv.in_sample_vs_control_se)})
            for q, ci in (("value", pv.value_interval()), ("vs_control", pv.vs_control_interval()), ("vs_uniform", pv.vs_uniform_interval())):
                rec.update({q: getattr(pv, q), f"{q}_se": getattr(pv, f"{q}_se"), f"true_{q}": tv[q],
                            f"{q}_covered": bool(ci[0] <= tv[q] <= ci[1])})
            lines.append(json.dumps(rec))
        with open(out, "a") as fh:  # a replication's records land together (resumable)
            fh.write("\n".join(lines) + "\n")
        print(f"replication {rep}: {time.perf_counter() - t0:.0f} s", flush=True)
    summarize(out)


if __name__ == "__main__":
    main()
