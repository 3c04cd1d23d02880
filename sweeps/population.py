"""DGP populations: template parameters and round sizes drawn per replication.

A sweep spec may give a template parameter (or a schedule argument) a *distribution* instead of
a value; every replication then draws its own value, so an R(p) curve fitted on the sweep
averages over a prior of regimes rather than one point::

    templates:
      - name: clustered_realistic
        params:
          effect_scale: {uniform: [0, 1.5]}          # float, uniform on [lo, hi]
          conversion_scale: {loguniform: [0.5, 3]}   # float, log-uniform on [lo, hi], lo > 0
          severity_sigma: {choice: [0.4, 0.6, 0.9]}  # one of the listed values, equally likely
          n_irrelevant: {randint: [0, 20]}           # int, uniform on {lo, ..., hi}
    schedule: {kind: fixed, args: {per_round: {loguniform: [1000, 20000], integer: true}, n_rounds: 1}}

``uniform`` and ``loguniform`` take an optional ``integer: true`` (the draw is rounded to the
nearest int, still within ``[lo, hi]``). Schedule arguments (``initial``, ``per_round``,
``n_rounds``, each of ``sizes``) must be integer distributions (``randint``, ``choice`` of ints
or ``integer: true``) whose every value is >= 1.

Determinism: each value is drawn from its own stream, ``SeedSequence([seed, replication,
*sha256(template, key)])``, where ``seed`` is the task's seed (the spec's ``seed`` plus the
replication, or the spec's explicit ``seeds``), ``template`` the template's name and ``key`` the
parameter's name (``schedule.per_round``, ``schedule.sizes.0``...). The same spec therefore
draws the same values on every machine and in every rerun, and adding a parameter to the
population does not change the draws of the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["DISTRIBUTIONS", "describe", "draw", "is_distribution", "parse_distribution"]

#: distribution kinds and whether they always draw ints
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_distribution(value: Any) -> bool:
    """Whether a spec value is a distribution mapping (one of :data:`DISTRIBUTIONS` as a key)."""
    return isinstance(value, Mapping) and any(k in value for k in DISTRIBUTIONS)


def parse_distribution(value: Any, name: str, err: Any, *, integer: bool = False, low: float | None = None) -> dict[str, Any]:
    """Validate a distribution mapping; return it as plain data.

    Parameters
    ----------
    value
        The mapping, e.g. ``{"uniform": [0, 1.5]}``.
    name
        The spec field, for errors (``templates[0].params.effect_scale``).
    err
        ``err(name, expected, got) -> ValueError`` of the spec module.
    integer
        Require a distribution that draws ints (schedule arguments).
    low
        Smallest value a draw may take (checked against the bounds and choices).
    """
    if not isinstance(value, Mapping):
        raise err(name, f"a distribution mapping with one of {', '.join(DISTRIBUTIONS)}", value)
    kinds = [k for k in DISTRIBUTIONS if k in value]
    extra = set(value) - set(DISTRIBUTIONS) - {"integer"}
    if len(kinds) != 1 or extra:
        raise err(name, f"a distribution mapping with exactly one of {', '.join(DISTRIBUTIONS)} (and optionally 'integer')", dict(value))
    kind = kinds[0]
    args = value[kind]
    as_int = value.get("integer", False)
    if not isinstance(as_int, bool):
        raise err(f"{name}.integer", "true or false", as_int)
    if as_int and kind not in ("uniform", "loguniform"):
        raise err(f"{name}.integer", f"absent for a {kind!r} distribution (only uniform/loguniform take it)", as_int)
    out: dict[str, Any] = {kind: args}
    if kind == "choice":
        if not isinstance(args, (list, tuple)) or not args:
            raise err(f"{name}.choice", "a non-empty list of values", args)
        args = list(args)
        if integer and not all(_is_int(v) for v in args):
            raise err(f"{name}.choice", "a list of ints (a schedule argument is a count of visitors or rounds)", args)
        if low is not None and any(_is_real(v) and v < low for v in args):
            raise err(f"{name}.choice", f"values >= {low:g}", args)
        out[kind] = args
        return out
    if not isinstance(args, (list, tuple)) or len(args) != 2 or not all(_is_real(v) for v in args):
        raise err(f"{name}.{kind}", "a pair [lo, hi] of finite numbers", args)
    lo, hi = args
    if kind == "randint" and not (_is_int(lo) and _is_int(hi)):
        raise err(f"{name}.randint", "a pair [lo, hi] of ints", args)
    if not lo < hi:
        raise err(f"{name}.{kind}", "a pair [lo, hi] with lo < hi", args)
    if kind == "loguniform" and lo <= 0:
        raise err(f"{name}.loguniform", "a pair [lo, hi] with 0 < lo < hi", args)
    if integer and kind != "randint" and not as_int:
        raise err(name, "an integer distribution (randint, choice of ints, or uniform/loguniform with integer: true)", dict(value))
    if as_int and math.ceil(lo) > math.floor(hi):
        raise err(f"{name}.{kind}", "a pair [lo, hi] holding at least one int", args)
    if low is not None and lo < low:
        raise err(f"{name}.{kind}", f"a pair [lo, hi] with lo >= {low:g}", args)
    out[kind] = [lo, hi]
    if as_int:
        out["integer"] = True
    return out


def _stream(seed: int, replication: int, template: str, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{template}\x1f{key}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(replication), *words]))


def draw(dist: Mapping[str, Any], *, seed: int, replication: int, template: str, key: str) -> Any:
    """One value of a validated distribution, from its own deterministic stream (module docstring)."""
    rng = _stream(seed, replication, template, key)
    if "choice" in dist:
        values = dist["choice"]
        return values[int(rng.integers(len(values)))]
    if "randint" in dist:
        lo, hi = dist["randint"]
        return int(rng.integers(lo, hi + 1))
    if "uniform" in dist:
        lo, hi = dist["uniform"]
        x = float(rng.uniform(lo, hi))
    else:
        lo, hi = dist["loguniform"]
        x = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if dist.get("integer"):
        return int(min(max(round(x), math.ceil(lo)), math.floor(hi)))
    return x


def describe(dist: Mapping[str, Any]) -> str:
    """Short readable form, e.g. ``uniform[0,1.5]`` or ``choice{0.4,0.6}``."""
    if "choice" in dist:
        return "choice{" + ",".join(f"{v:g}" if _is_real(v) else str(v) for v in dist["choice"]) + "}"
    kind = next(k for k in DISTRIBUTIONS if k in dist)
    lo, hi = dist[kind]
    suffix = ":int" if dist.get("integer") else ""
    return f"{kind}[{lo:g},{hi:g}]{suffix}"
