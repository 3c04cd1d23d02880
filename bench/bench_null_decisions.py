"""Decision honesty on null data (issue 11 item 6): how often a no-effect experiment looks actionable.

Runs round 0 of a sequential experiment on the ``null_effect`` template (no effect anywhere, K = 2)
for many seeds and writes ONE JSON LINE PER SEED to ``--out`` (resumable: seeds already in the
file are skipped). Each line records, for the round's policy tree:

- the segments (share, GATE estimate, 80% GATE interval, whether it excludes zero, the same at a
  Bonferroni level ``1 - 0.2 / L`` over the ``L`` segments, the segment's SHIP/CONTINUE/STOP
  decision);
- each segment's stability score under ``stability_method="means"`` (the glossary's, what the
  loop used) and ``"posterior"`` (same tree, same bootstrap seed);
- ``credible_means`` / ``credible_posterior``: some segment scores >= 0.80 under that method,
  one-leaf trees included (what ``SequentialExperiment.has_credible_segments()`` returned when
  the loop scored with "means" and a one-leaf tree still counted), and ``posterior_has_credible``:
  the same of the "means" tree at bootstrap seed 0 (what ``posterior.has_credible_segments()``
  returned then). The loop runs with ``stability_method="means"`` explicitly, so the rows keep
  their meaning now that "posterior" is the default and a one-leaf tree has no credible segment;
- the population decision, the graduation rule's SHIP signals (``ExpectedLossRule``: population
  plus segments with means-stability >= 0.80) and the SHIP signals the same rule would give with
  the posterior score as the gate.

``--summary`` reads the file(s) and prints the rates (with 95% Wilson intervals) as a Markdown
table. ``--cache DIR`` also saves each seed's outcome draws, features and segment labels as
``DIR/seed_<s>.npz`` so other scores can be computed later without refitting.

Run (toy MCMC, 60 seeds, in the background)::

    nohup .venv/bin/python bench/bench_null_decisions.py --seeds 0-59 --config toy \\
        --out bench/null_decisions_toy.jsonl > /tmp/null_toy.log 2>&1 &
    .venv/bin/python bench/bench_null_decisions.py --summary bench/null_decisions_toy.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

CONFIGS = {
    # the toy MCMC (as experiments/coverage_sweep.yaml): 50/20 trees, 100 burn-in + 100 draws, 2 chains
    "toy": dict(num_trees_mu=50, num_trees_tau=20, num_burnin=100, num_draws=100, num_chains=2),
    # the library's defaults (GPUBCFConfig())
    "default": dict(),
}
THRESHOLD = 0.80
GATE_LEVEL = 0.80


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _done(path: Path) -> set[int]:
    if not path.exists():
        return set()
    seen = set()
    for line in path.read_text().splitlines():
        if line.strip():
            seen.add(int(json.loads(line)["seed"]))
    return seen


def run_seed(seed: int, n: int, config: str, cache: Path | None, template: str = "null_effect") -> dict:
    import pytyche as pt
    from dgps.registry import make_generator
    from pytyche.analysis.stability import posterior_stability
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.compare._draws import group_means
    from pytyche.contracts.enums import Decision
    from pytyche.contracts.results import is_credible
    from pytyche.experiment.graduation import ExpectedLossRule
    from pytyche.experiment.sequential import _derive_seed

    treatments = ["control", "treatment"]
    gen_kw = {"treatments": treatments} if template == "null_effect" else {}
    exp = pt.sequential_experiment(
        generator=make_generator(template, seed=seed, **gen_kw),
        schedule=pt.FixedSchedule(per_round=n, n_rounds=1),
        treatments=treatments,
        calibration=pt.Calibration.skip(),
        seed=seed,
        bcf_config=GPUBCFConfig(**CONFIGS[config]),
        stability_method="means",  # the rows' "stability_means" is the loop's score
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = next(exp)
    t_round = time.perf_counter() - t0
    post, an = e.posterior, e.analysis
    tree = an.policy_tree
    draws = np.asarray(post.outcome_samples)
    x, _ = post.observed.feature_matrix(post.observed.categories())
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    leaves = np.asarray(tree.leaf_of(post.observed.features_frame()))
    ids = [s.id for s in tree.segments]
    segment_of = np.searchsorted(np.asarray(ids), leaves)
    n_seg = len(ids)
    min_leaf = max(1, math.ceil(exp.min_segment_share * post.observed.n_visitors))
    boot_seed = _derive_seed(seed, 0, 1)
    t1 = time.perf_counter()
    post_scores = posterior_stability(
        x32, draws, segment_of, n_seg, max_depth=exp.max_segment_depth, min_samples_leaf=min_leaf,
        n_bootstrap=50, seed=boot_seed,
    )
    t_post = time.perf_counter() - t1

    group = group_means(draws, segment_of, n_seg)  # (L, S, K)
    gate = group[..., 1] - group[..., 0]  # (L, S)
    bonf = 1.0 - (1.0 - GATE_LEVEL) / n_seg
    blo, bhi = post.interval(gate, level=bonf, family="gate", axis=-1)
    truth = e.cumulative_truth
    true_cate = None if truth is None else truth.expected_outcome[:, 1] - truth.expected_outcome[:, 0]
    segs = []
    for j, s in enumerate(tree.segments):
        lo, hi = s.gate_ci["treatment"]
        rec = an.segment_recommendations[s.id]["treatment"]
        segs.append(
            dict(
                id=int(s.id), share=s.population_share, rule=str(s.rule),
                gate=s.gate_estimate["treatment"], gate_ci=[lo, hi], gate_excludes_zero=bool(lo > 0 or hi < 0),
                gate_ci_bonferroni=[float(blo[j]), float(bhi[j])],
                gate_excludes_zero_bonferroni=bool(blo[j] > 0 or bhi[j] < 0),
                stability_means=float(s.stability_score), stability_posterior=float(post_scores[j]),
                decision=rec.decision.value, best_treatment=s.best_treatment,
                true_gate=None if true_cate is None else float(true_cate[segment_of == j].mean()),
            )
        )
    # the graduation rule's SHIP signals with the posterior score as the segment gate
    rule = ExpectedLossRule()
    ship_post = []
    if n_seg >= 2:
        for j, s in enumerate(segs):
            if s["stability_posterior"] >= rule.stability_threshold and s["decision"] == Decision.SHIP.value:
                ship_post.append(s["id"])
    pop = an.recommendations["treatment"]
    # one-leaf trees included: the rates in bench/RESULTS.md were measured this way
    credible_means = bool(any(is_credible(s.stability_score) for s in tree.segments))
    tree_seed0 = post.fit_policy_tree(stability_method="means")
    row = dict(
        seed=seed, n=n, config=config, template=template, n_segments=n_seg,
        population_decision=pop.decision.value, population_lift_ci=[float(pop.lift_ci[0]), float(pop.lift_ci[1])]
        if hasattr(pop, "lift_ci") else None,
        segments=segs,
        credible_means=credible_means,
        credible_posterior=bool(any(s["stability_posterior"] >= THRESHOLD for s in segs)),
        posterior_has_credible=bool(any(is_credible(s.stability_score) for s in tree_seed0.segments)),
        ship_signals_means=[[sig.treatment, sig.segment_id] for sig in e.ship_signals],
        ship_any_population=pop.decision == Decision.SHIP,
        ship_any_segment=any(s["decision"] == Decision.SHIP.value for s in segs),
        ship_signals_posterior=[["treatment", None]] * (pop.decision == Decision.SHIP) + [["treatment", i] for i in ship_post],
        seconds_round=round(t_round, 2), seconds_posterior_stability=round(t_post, 2),
    )
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache / f"seed_{seed}.npz", draws=draws.astype(np.float32), x=x32, segment_of=segment_of,
                            boot_seed=boot_seed, min_leaf=min_leaf)
    return row


def _wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    z = 1.959964
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{k}/{n} = {p:.2f} [{max(0, c - h):.2f}, {min(1, c + h):.2f}]"


def summary(paths: list[Path]) -> str:
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    out = []
    for template, config in sorted({(r.get("template", "null_effect"), r["config"]) for r in rows}):
        rs = [r for r in rows if r["config"] == config and r.get("template", "null_effect") == template]
        n = len(rs)
        segs = [s for r in rs for s in r["segments"]]
        multi = [r for r in rs if r["n_segments"] >= 2]
        msegs = [s for r in multi for s in r["segments"]]
        lines = [
            ("runs (seeds)", f"{n}"),
            ("runs with >= 2 segments", _wilson(len(multi), n)),
            ("segments per run (mean)", f"{np.mean([r['n_segments'] for r in rs]):.2f}"),
            ("credible, means score (loop's has_credible_segments)", _wilson(sum(r["credible_means"] for r in rs), n)),
            ("credible, means score (posterior.has_credible_segments(), seed 0)", _wilson(sum(r["posterior_has_credible"] for r in rs), n)),
            ("credible, posterior score", _wilson(sum(r["credible_posterior"] for r in rs), n)),
            ("split into >= 2 segments AND some segment credible, means score (loop)",
             _wilson(sum(r["credible_means"] and r["n_segments"] >= 2 for r in rs), n)),
            ("split into >= 2 segments AND some segment credible, posterior score",
             _wilson(sum(r["credible_posterior"] and r["n_segments"] >= 2 for r in rs), n)),
            ("segments (of >= 2-leaf trees) with means score >= 0.80", _wilson(sum(s["stability_means"] >= THRESHOLD for s in msegs), len(msegs))),
            ("segments (of >= 2-leaf trees) with posterior score >= 0.80", _wilson(sum(s["stability_posterior"] >= THRESHOLD for s in msegs), len(msegs))),
            ("median means score / posterior score (segments of >= 2-leaf trees)",
             f"{np.median([s['stability_means'] for s in msegs]) if msegs else float('nan'):.2f} / "
             f"{np.median([s['stability_posterior'] for s in msegs]) if msegs else float('nan'):.2f}"),
            ("max posterior score over all segments", f"{max((s['stability_posterior'] for s in msegs), default=float('nan')):.2f}"),
            ("population SHIP", _wilson(sum(r["ship_any_population"] for r in rs), n)),
            ("any segment decision SHIP (ungated)", _wilson(sum(r["ship_any_segment"] for r in rs), n)),
            ("graduation SHIP signal, means gate (loop)", _wilson(sum(bool(r["ship_signals_means"]) for r in rs), n)),
            ("graduation SHIP signal, posterior gate", _wilson(sum(bool(r["ship_signals_posterior"]) for r in rs), n)),
            ("run with some 80% GATE interval excluding 0", _wilson(sum(any(s["gate_excludes_zero"] for s in r["segments"]) for r in rs), n)),
            ("per segment: 80% GATE interval excludes 0", _wilson(sum(s["gate_excludes_zero"] for s in segs), len(segs))),
            ("run with some Bonferroni (1 - 0.2/L) GATE interval excluding 0",
             _wilson(sum(any(s["gate_excludes_zero_bonferroni"] for s in r["segments"]) for r in rs), n)),
            ("population 90% lift interval excludes 0",
             _wilson(sum(r["population_lift_ci"] is not None and (r["population_lift_ci"][0] > 0 or r["population_lift_ci"][1] < 0) for r in rs), n)),
            ("seconds per round (median) / posterior stability (median)",
             f"{np.median([r['seconds_round'] for r in rs]):.1f} / {np.median([r['seconds_posterior_stability'] for r in rs]):.2f}"),
        ]
        if template != "null_effect" and msegs and msegs[0].get("true_gate") is not None:
            right = [s for s in msegs if (s["true_gate"] > 0) == (s["best_treatment"] == "treatment")]
            wrong = [s for s in msegs if s not in right]
            lines += [
                ("segments (of >= 2-leaf trees) whose best arm the truth confirms", _wilson(len(right), len(msegs))),
                ("... of those, means score >= 0.80", _wilson(sum(s["stability_means"] >= THRESHOLD for s in right), len(right))),
                ("... of those, posterior score >= 0.80", _wilson(sum(s["stability_posterior"] >= THRESHOLD for s in right), len(right))),
                ("segments whose best arm the truth contradicts: means / posterior score >= 0.80",
                 f"{sum(s['stability_means'] >= THRESHOLD for s in wrong)} / {sum(s['stability_posterior'] >= THRESHOLD for s in wrong)} of {len(wrong)}"),
            ]
        out.append(f"**config {config}** ({template}, K = 2, round 0, n = {rs[0]['n']})\n")
        out.append("| measure | count / runs = rate [95% Wilson] |\n| --- | --- |")
        out.extend(f"| {a} | {b} |" for a, b in lines)
        out.append("")
        # the rate at other credibility thresholds: runs split into >= 2 segments with some segment >= t
        head = "| threshold t | split runs with a segment >= t: means | ... posterior |"
        extra = template != "null_effect" and msegs and msegs[0].get("true_gate") is not None
        if extra:
            head += " truth-confirmed segments >= t: means | ... posterior |"
        out.append(head + "\n|" + " --- |" * (head.count("|") - 1))
        for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            cells = [
                _wilson(sum(any(s[f"stability_{m}"] >= t for s in r["segments"]) for r in multi), n) for m in ("means", "posterior")
            ]
            if extra:
                cells += [_wilson(sum(s[f"stability_{m}"] >= t for s in right), len(right)) for m in ("means", "posterior")]
            out.append(f"| {t:.1f} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-59")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="toy")
    ap.add_argument("--template", default="null_effect", help="a K = 2 template (null_effect, or continuous_metric as a real-segment control)")
    ap.add_argument("--out", type=Path, default=Path("bench/null_decisions_toy.jsonl"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--summary", type=Path, nargs="*", default=None)
    args = ap.parse_args()
    if args.summary is not None:
        print(summary(args.summary or [args.out]))
        return
    done = _done(args.out)
    for seed in _seeds(args.seeds):
        if seed in done:
            continue
        row = run_seed(seed, args.n, args.config, args.cache, args.template)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"seed {seed}: {row['n_segments']} segments, means {[round(s['stability_means'], 2) for s in row['segments']]}, "
              f"posterior {[round(s['stability_posterior'], 2) for s in row['segments']]}, "
              f"pop {row['population_decision']}, {row['seconds_round']} s", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
