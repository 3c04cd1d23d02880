"""Decision error rates of a sweep: false SHIP, harm detection, power, false credible segments.

From the ``kind="decision"`` rows (:mod:`sweeps.decisions`), per DGP template, over whole runs (a
run is one task: one full sequential experiment). A claim "fired for an arm whose truth says
otherwise" is a row with ``fired`` true and ``right`` false; truth is the round's (cumulative
visitors), so every round is judged on its own.

``false_ship_population``
    Runs in which a population SHIP fired, at some round, for an arm whose true effect was <= 0,
    over the runs that have such an arm (some population SHIP row with ``right`` false): null and
    harmful templates give the rate, a template whose every arm is better has no runs to count.
    A run counts once, however many arms or rounds erred (a family-wise rate).
``false_ship_segment``
    The same for segment SHIP (the graduation rule's signal on a credible segment), over the runs
    in which some (segment, arm) of a multi-leaf tree had a true effect <= 0.
``harm_detection``
    Over the (run, arm) pairs whose arm is truly harmful at the run's final round (true relative
    effect < -min_effect): those for which STOP harm fired at some round.
``power``
    Over the (run, arm) pairs whose arm is truly better at the run's final round (true relative
    effect > min_effect): those for which population SHIP fired by the last round.
    ``rounds_to_ship_mean`` is the mean, over those detected with a right SHIP, of the first
    round of a right SHIP counted from 1 (``round_idx + 1``), and ``sample_size_to_ship_mean`` the
    mean cumulative sample size at that round.
``false_credible_segment``
    Over every run: those in which, at some round, a credible segment fired that is not right
    (its truth does not differ from the rest of the visitors by more than min_effect).

Each rate comes with its count ``_k``, its denominator ``_n`` and a 95% Wilson score interval
``_lo`` / ``_hi`` (:func:`wilson_interval`; NaN with no denominator).
"""

from __future__ import annotations

import json
import re

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["RATES", "decision_rates", "format_rates", "rates_json", "rates_metrics", "wilson_interval"]

#: the rates :func:`decision_rates` reports (see the module docstring)
RATES = ("false_ship_population", "false_ship_segment", "harm_detection", "power", "false_credible_segment")


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion ``k / n`` (NaN bounds when ``n == 0``).

    Examples
    --------
    >>> lo, hi = wilson_interval(3, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.1078, 0.6032)
    """
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2.0))
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(hits: int, n: int) -> dict[str, float]:
    lo, hi = wilson_interval(hits, n)
    return {"": hits / n if n else float("nan"), "_lo": lo, "_hi": hi, "_k": hits, "_n": n}


def _flag(v: Any) -> bool | None:
    """A ``right`` / ``fired`` cell as a bool, or ``None`` when null (None, NaN, pandas NA)."""
    try:
        return None if v is None or v != v else bool(v)
    except TypeError:  # pandas.NA
        return None


def _wrong(rows: "pd.DataFrame") -> "pd.Series":
    return rows["right"].map(_flag).map(lambda v: v is False).astype(bool)


def _right(rows: "pd.DataFrame") -> "pd.Series":
    return rows["right"].map(_flag).map(lambda v: v is True).astype(bool)


def _false_fired(rows: "pd.DataFrame") -> tuple[int, int]:
    """(runs with a fired wrong claim, runs with some wrong-if-fired claim)."""
    wrong = _wrong(rows)
    eligible = set(rows.loc[wrong, "task_id"])
    hits = set(rows.loc[wrong & rows["fired"].astype(bool), "task_id"])
    return len(hits), len(eligible)


def _final_rows(rows: "pd.DataFrame", last: "pd.Series") -> "pd.DataFrame":
    return rows[rows["round_idx"].to_numpy() == rows["task_id"].map(last).to_numpy()]


def _template_rates(g: "pd.DataFrame") -> dict[str, Any]:
    last = g.groupby("task_id")["round_idx"].max()
    out: dict[str, Any] = {"n_runs": int(g["task_id"].nunique())}
    by = {d: g[g["decision"] == d] for d in ("ship_population", "ship_segment", "stop_harm", "credible_segment")}
    parts = {
        "false_ship_population": _false_fired(by["ship_population"]),
        "false_ship_segment": _false_fired(by["ship_segment"]),
    }
    # harm detection: (run, arm) truly harmful at the final round; STOP harm fired at some round
    harm = by["stop_harm"]
    final = _final_rows(harm, last)
    harmful_rows = final[final["true_relative_effect"] < -final["min_effect"]]
    harmful = set(zip(harmful_rows["task_id"], harmful_rows["treatment"]))
    stops = harm[harm["fired"].astype(bool)]
    stopped = set(zip(stops["task_id"], stops["treatment"]))
    parts["harm_detection"] = (len(harmful & stopped), len(harmful))
    # power: (run, arm) truly better at the final round; population SHIP fired by the last round
    ship = by["ship_population"]
    final = _final_rows(ship, last)
    better_rows = final[final["true_relative_effect"] > final["min_effect"]]
    better = set(zip(better_rows["task_id"], better_rows["treatment"]))
    fired = ship[ship["fired"].astype(bool)]
    shipped = set(zip(fired["task_id"], fired["treatment"]))
    parts["power"] = (len(better & shipped), len(better))
    right = fired[_right(fired)]
    first = right.sort_values("round_idx").groupby(["task_id", "treatment"]).first()
    first = first[np.array([key in better for key in first.index], dtype=bool)]
    out["rounds_to_ship_mean"] = float((first["round_idx"] + 1).mean()) if len(first) else float("nan")
    out["sample_size_to_ship_mean"] = float(first["sample_size"].mean()) if len(first) else float("nan")
    # false credible segment: over every run
    cred = by["credible_segment"]
    hits = set(cred.loc[_wrong(cred) & cred["fired"].astype(bool), "task_id"])
    parts["false_credible_segment"] = (len(hits), out["n_runs"])
    for name in RATES:
        for suffix, value in _rate(*parts[name]).items():
            out[f"{name}{suffix}"] = value
    return out


def decision_rates(frame: "pd.DataFrame") -> "pd.DataFrame":
    """The decision rates of the module docstring, one row per template with decision rows.

    Parameters
    ----------
    frame
        Sweep rows (:func:`sweeps.shards.read_records`); only ``kind="decision"`` rows are read.

    Returns
    -------
    DataFrame
        Columns ``template, n_runs``, for each rate of :data:`RATES` the rate and its ``_lo``,
        ``_hi``, ``_k``, ``_n``, and ``rounds_to_ship_mean``, ``sample_size_to_ship_mean``.
    """
    import pandas as pd

    cols = ["template", "n_runs", *[f"{r}{s}" for r in RATES for s in ("", "_lo", "_hi", "_k", "_n")],
            "rounds_to_ship_mean", "sample_size_to_ship_mean"]
    dec = frame[frame["kind"] == "decision"] if "kind" in frame else frame
    if dec.empty:
        return pd.DataFrame(columns=cols)
    labels = run_labels(dec)
    rows = [{"template": t, **_template_rates(g)} for t, g in dec.groupby(labels, sort=True)]
    return pd.DataFrame(rows, columns=cols)


def run_labels(dec: "pd.DataFrame") -> "pd.Series":
    """Each row's template, with its parameters where one template ran at several settings (a
    held-out spec runs ``clustered_realistic`` at no effect and at its planted one): their rates
    must not pool. Parameters are written ``name-value`` with every character an MLflow metric
    name refuses replaced by ``_`` (``clustered_realistic effect_scale-0.0``). Parameters drawn per
    replication (a DGP population: the row's ``draws``) are not settings: a population's runs
    pool under their template."""
    import pandas as pd

    if "params" not in dec:
        return dec["template"].astype(str)

    def fixed(raw: Any, drawn: Any) -> str:
        items = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        drawn = json.loads(drawn) if isinstance(drawn, str) and drawn else (drawn if isinstance(drawn, dict) else {})
        return json.dumps({k: v for k, v in items.items() if k not in drawn}, sort_keys=True)

    draws = dec["draws"] if "draws" in dec else pd.Series([None] * len(dec), index=dec.index)
    params = pd.Series([fixed(p, d) for p, d in zip(dec["params"], draws)], index=dec.index)
    several = params.groupby(dec["template"]).transform("nunique") > 1

    def label(template: str, raw: str) -> str:
        items = json.loads(raw) if raw else {}
        text = " ".join(f"{k}-{v}" for k, v in sorted(items.items()))
        return f"{template} {re.sub(r'[^A-Za-z0-9_. /-]', '_', text)}".strip()

    out = dec["template"].astype(str).copy()
    out[several] = [label(t, r) for t, r in zip(dec["template"][several], params[several])]
    return pd.Series(out, index=dec.index, name="template")


def _number(v: Any) -> Any:
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def rates_json(rates: "pd.DataFrame") -> dict[str, Any]:
    """``{template: {"n_runs", rate: {"rate", "lo", "hi", "k", "n"}, "rounds_to_ship_mean",
    "sample_size_to_ship_mean"}}`` (NaN as ``None``)."""
    out: dict[str, Any] = {}
    for r in rates.to_dict("records"):
        entry: dict[str, Any] = {"n_runs": int(r["n_runs"])}
        for name in RATES:
            entry[name] = {"rate": _number(r[name]), "lo": _number(r[f"{name}_lo"]), "hi": _number(r[f"{name}_hi"]),
                           "k": int(r[f"{name}_k"]), "n": int(r[f"{name}_n"])}
        entry["rounds_to_ship_mean"] = _number(r["rounds_to_ship_mean"])
        entry["sample_size_to_ship_mean"] = _number(r["sample_size_to_ship_mean"])
        out[str(r["template"])] = entry
    return out


def rates_metrics(rates: "pd.DataFrame") -> dict[str, float]:
    """MLflow metrics of the rates: ``decisions/<template>/<rate>`` with ``_lo``, ``_hi``, ``_n``
    siblings, ``decisions/<template>/n_runs``, ``.../rounds_to_ship_mean`` and
    ``.../sample_size_to_ship_mean``; NaN values (no denominator) are left out."""
    out: dict[str, float] = {}
    for r in rates.to_dict("records"):
        prefix = f"decisions/{r['template']}/"
        out[prefix + "n_runs"] = float(r["n_runs"])
        for name in RATES:
            for suffix in ("", "_lo", "_hi", "_n"):
                out[f"{prefix}{name}{suffix}"] = float(r[f"{name}{suffix}"])
        out[prefix + "rounds_to_ship_mean"] = float(r["rounds_to_ship_mean"])
        out[prefix + "sample_size_to_ship_mean"] = float(r["sample_size_to_ship_mean"])
    return {k: v for k, v in out.items() if math.isfinite(v)}


def format_rates(rates: "pd.DataFrame") -> str:
    """The rates as a plain-text table: one line per template and rate (value, 95% interval,
    count over denominator), then the template's rounds-to-decision."""

    def num(v: Any, fmt: str = ".3f") -> str:
        return "-" if v is None or not math.isfinite(float(v)) else format(float(v), fmt)

    lines = ["decision rates over runs (95% Wilson intervals; harm_detection and power over run-arm pairs)"]
    lines.append(f"{'template':<24} {'rate':<26} {'value':>6}  {'interval':<16} {'k/n':>9}")
    for r in rates.to_dict("records"):
        for name in RATES:
            lo, hi, k, n = (r[name + suffix] for suffix in ("_lo", "_hi", "_k", "_n"))
            interval = f"[{num(lo)}, {num(hi)}]" if n else "-"
            count = f"{k}/{n}"
            lines.append(f"{r['template']:<24} {name:<26} {num(r[name]):>6}  {interval:<16} {count:>9}")
        lines.append(f"{r['template']:<24} {'rounds_to_ship_mean':<26} {num(r['rounds_to_ship_mean'], '.2f'):>6}  "
                     f"(sample size {num(r['sample_size_to_ship_mean'], '.0f')}; {r['n_runs']} runs)")
    return "\n".join(lines)
