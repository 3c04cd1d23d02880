"""Read and validate a sweep spec's YAML (the format is described in :mod:`sweeps.spec`).

`parse_spec` checks a mapping field by field and builds the frozen `SweepSpec`; `load_spec` reads
a YAML file; `spec_from` accepts any of a spec, a mapping or a path. Every error names the field.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pytyche.contracts.truth import QUANTITY_FAMILIES
from sweeps import population as _pop
from sweeps._frozen import _freeze, _Items, _plain, canonical_json
from sweeps.spec import (
    _TOP_KEYS,
    _WHERE,
    ActorSpec,
    ScheduleSpec,
    SweepSpec,
    TemplateSpec,
    _combinations,
    _err,
    expand_tasks,
)

__all__ = ["load_spec", "parse_spec", "spec_from"]

SCHEDULE_KINDS = ("geometric", "fixed", "explicit")
_SCHEDULE_ARGS = {
    "geometric": ({"initial", "n_rounds"}, {"growth"}),
    "fixed": ({"per_round", "n_rounds"}, set()),
    "explicit": ({"sizes"}, set()),
}
# SequentialExperiment keyword arguments a spec may set (the rest are owned by the task runner);
# ``thresholds`` (DecisionThresholds fields) becomes the graduation rule (sweeps.task.experiment_kwargs)
EXPERIMENT_KEYS = (
    "min_control_weight",
    "min_explore_weight",
    "max_segment_depth",
    "min_segment_share",
    "stability_method",
    "thresholds",
    "ship_spending",
    "skip_analysis",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mapping(value: Any, name: str, *, optional: bool = True) -> dict[str, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise _err(name, "a mapping", value)
    return _plain(value, name)


def _grid(value: Any, name: str) -> dict[str, list[Any]]:
    grid = _mapping(value, name)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _err(f"{name}.{key}", "a non-empty list of values", values)
        seen = [canonical_json(v) for v in values]
        if len(set(seen)) != len(seen):
            raise _err(f"{name}.{key}", "a list without repeated values", values)
    return grid


def _parse_templates(value: Any) -> tuple[TemplateSpec, ...]:
    if not isinstance(value, list) or not value:
        raise _err("templates", "a non-empty list of {name, params, grid} mappings", value)
    out = []
    for i, item in enumerate(value):
        where = f"templates[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping):
            raise _err(where, "a mapping with a 'name' (and optional 'params', 'grid')", item)
        extra = set(item) - {"name", "params", "grid"}
        if extra:
            raise _err(where, "a mapping with keys name, params, grid only", sorted(extra))
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _err(f"{where}.name", "a non-empty str", name)
        params = _mapping(item.get("params"), f"{where}.params")
        for key, value in params.items():
            if _pop.is_distribution(value):
                params[key] = _pop.parse_distribution(value, f"{where}.params.{key}", _err)
        grid = _grid(item.get("grid"), f"{where}.grid")
        for key, values in grid.items():
            if any(_pop.is_distribution(v) for v in values):
                raise _err(f"{where}.grid.{key}", "a list of fixed values (give a distribution in params instead)", values)
        for key in ("seed", "n_visitors"):
            if key in params or key in grid:
                raise _err(f"{where}.params.{key}", "absent (seeds come from 'replications'/'seeds', round sizes from 'schedule')", params.get(key, grid.get(key)))
        clash = set(params) & set(grid)
        if clash:
            raise _err(f"{where}.grid", "keys not also fixed in params", sorted(clash))
        _check_template_params(name, params, grid, where)
        out.append(TemplateSpec(name=name, params=_freeze(params), grid=_freeze(grid)))
    return tuple(out)


def _check_template_params(name: str, params: Mapping[str, Any], grid: Mapping[str, list[Any]], where: str) -> None:
    """Every fixed and grid value against the template's ``make()`` (before a cluster is touched)."""
    from sweeps.template_params import check_template_param

    for key, value in params.items():
        check_template_param(name, key, value, field=f"{where}.params.{key}")
    for key, values in grid.items():
        for i, value in enumerate(values):
            check_template_param(name, key, value, field=f"{where}.grid.{key}[{i}]")


def _parse_experiment(value: Any) -> dict[str, Any]:
    """The ``experiment`` section: known keys, a valid ``stability_method``, ``ship_spending``,
    ``skip_analysis`` and ``thresholds``.

    ``skip_analysis`` is kept in :data:`~pytyche.experiment.ANALYSIS_STEPS` order, and an empty
    list is dropped (the default must not change task ids).

    ``thresholds`` values are stored as floats (so ``0`` and ``0.0`` give one task id) and an
    empty ``thresholds`` mapping is dropped (it changes nothing, so it must not change the ids).
    """
    from pytyche.analysis.policy_tree import STABILITY_METHODS
    from pytyche.contracts.results import THRESHOLDS_CONSTRAINTS

    experiment = _mapping(value, "experiment")
    extra = set(experiment) - set(EXPERIMENT_KEYS)
    if extra:
        raise _err("experiment", f"a mapping of SequentialExperiment settings ({', '.join(EXPERIMENT_KEYS)})", sorted(extra))
    if "stability_method" in experiment and experiment["stability_method"] not in STABILITY_METHODS:
        raise _err("experiment.stability_method", f"one of {', '.join(repr(m) for m in STABILITY_METHODS)}", experiment["stability_method"])
    if "ship_spending" in experiment:
        from pytyche.experiment.spending import SHIP_SPENDING_METHODS

        if experiment["ship_spending"] not in SHIP_SPENDING_METHODS:
            raise _err("experiment.ship_spending", f"one of {', '.join(repr(m) for m in SHIP_SPENDING_METHODS)}", experiment["ship_spending"])
    if "skip_analysis" in experiment:
        from pytyche.experiment.sequential import ANALYSIS_STEPS

        skip = experiment["skip_analysis"]
        if not isinstance(skip, list) or not all(isinstance(v, str) and v in ANALYSIS_STEPS for v in skip):
            raise _err("experiment.skip_analysis", f"a list of analysis steps to skip, each one of {', '.join(ANALYSIS_STEPS)}", skip)
        if skip:  # in ANALYSIS_STEPS order, once each, so one choice gives one task id
            experiment["skip_analysis"] = [a for a in ANALYSIS_STEPS if a in skip]
        else:  # skipping nothing is the default: it must not change the ids
            del experiment["skip_analysis"]
    if "thresholds" in experiment:
        th = _mapping(experiment["thresholds"], "experiment.thresholds", optional=False)
        unknown = set(th) - set(THRESHOLDS_CONSTRAINTS)
        if unknown:
            raise _err("experiment.thresholds", f"a mapping of DecisionThresholds fields ({', '.join(THRESHOLDS_CONSTRAINTS)})", sorted(unknown))
        for key, v in th.items():
            entry = THRESHOLDS_CONSTRAINTS[key]
            if not _is_real(v) or not entry.accepts(v):
                raise _err(f"experiment.thresholds.{key}", entry.describe(), v)
            th[key] = float(v)
        if th:
            experiment["thresholds"] = th
        else:
            del experiment["thresholds"]
    return experiment


def _check_calibration(name: str) -> None:
    """Resolve the artifact now (registry name or JSON path), so a wrong one fails at load."""
    from pytyche.calibrate.calibration import Calibration

    try:
        Calibration.from_sweep(name)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"The 'calibration' field of {_WHERE} names no usable artifact: {err}") from None


# seeds become BCF seeds, which jax.random.key tells apart only up to 2**32 - 1
_MAX_SEED = 2**32 - 1


def _parse_seeds(raw: Mapping[str, Any]) -> tuple[int, ...]:
    has_reps, has_seeds = raw.get("replications") is not None, raw.get("seeds") is not None
    if has_reps and has_seeds:
        raise _err("seeds", "absent when 'replications' is given (give one of them)", raw["seeds"])
    if has_seeds:
        seeds = raw["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and 0 <= s <= _MAX_SEED for s in seeds):
            raise _err("seeds", "a non-empty list of ints in [0, 2**32 - 1]", seeds)
        if len(set(seeds)) != len(seeds):
            raise _err("seeds", "a list without repeated seeds", seeds)
        return tuple(seeds)
    reps = raw.get("replications", 1)
    if not _is_int(reps) or reps < 1:
        raise _err("replications", "an int >= 1", reps)
    base = raw.get("seed", 0)
    if not _is_int(base) or base < 0 or base + reps - 1 > _MAX_SEED:
        raise _err("seed", f"an int >= 0 with seed + replications - 1 <= 2**32 - 1 (replications={reps})", base)
    return tuple(range(base, base + reps))


def _parse_schedule(value: Any) -> ScheduleSpec:
    if not isinstance(value, Mapping):
        raise _err("schedule", "a mapping {kind, args}", value)
    extra = set(value) - {"kind", "args"}
    if extra:
        raise _err("schedule", "a mapping with keys kind, args only", sorted(extra))
    kind = value.get("kind")
    if kind not in SCHEDULE_KINDS:
        raise _err("schedule.kind", f"one of {', '.join(SCHEDULE_KINDS)}", kind)
    args = _mapping(value.get("args"), "schedule.args")
    required, optional = _SCHEDULE_ARGS[kind]
    missing = required - set(args)
    if missing:
        raise _err("schedule.args", f"a mapping with {', '.join(sorted(required))} for kind {kind!r} (missing {', '.join(sorted(missing))})", args)
    extra = set(args) - required - optional
    if extra:
        raise _err("schedule.args", f"a mapping with keys {', '.join(sorted(required | optional))} only for kind {kind!r}", sorted(extra))
    for key in ("initial", "per_round", "n_rounds"):
        if key in args and _pop.is_distribution(args[key]):
            args[key] = _pop.parse_distribution(args[key], f"schedule.args.{key}", _err, integer=True, low=1)
        elif key in args and (not _is_int(args[key]) or args[key] < 1):
            raise _err(f"schedule.args.{key}", "an int >= 1 (or an integer distribution)", args[key])
    if "growth" in args and _pop.is_distribution(args["growth"]):
        args["growth"] = _pop.parse_distribution(args["growth"], "schedule.args.growth", _err, low=1)
    elif "growth" in args and (not _is_real(args["growth"]) or args["growth"] < 1):
        raise _err("schedule.args.growth", "a real number >= 1", args["growth"])
    if kind == "explicit":
        sizes = args["sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise _err("schedule.args.sizes", "a non-empty list of ints >= 1", sizes)
        for i, v in enumerate(sizes):
            if _pop.is_distribution(v):
                sizes[i] = _pop.parse_distribution(v, f"schedule.args.sizes[{i}]", _err, integer=True, low=1)
            elif not (_is_int(v) and v >= 1):
                raise _err("schedule.args.sizes", "a non-empty list of ints >= 1 (or integer distributions)", sizes)
    spec = ScheduleSpec(kind=kind, args=_freeze(args))
    try:  # what the tasks will build (e.g. a geometric schedule must not overflow); a population: one draw
        (spec.drawn(seed=0, replication=0, template="")[0] if spec.has_population else spec).build()
    except (TypeError, ValueError) as err:
        raise ValueError(f"The 'schedule.args' field of {_WHERE} does not build a schedule: {err}") from None
    return spec


def _check_bcf(bcf: Mapping[str, Any], name: str) -> None:
    from pytyche.bcf.config import GPUBCFConfig

    known = set(GPUBCFConfig.__dataclass_fields__)
    unknown = set(bcf) - known
    if unknown:
        raise _err(name, f"a mapping of GPUBCFConfig fields (unknown: {', '.join(sorted(unknown))})", sorted(unknown))
    if "seed" in bcf:
        raise _err(f"{name}.seed", "absent (each task's BCF seed derives from its replication seed)", bcf["seed"])
    try:
        GPUBCFConfig(**bcf)
    except (TypeError, ValueError) as err:
        raise ValueError(f"The '{name}' field of {_WHERE} is not a valid GPUBCFConfig: {err}") from None


def _parse_levels(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(_is_real(v) and 0 < v < 1 for v in value):
        raise _err("levels", "a non-empty list of nominal levels in (0, 1)", value)
    levels = tuple(sorted(float(v) for v in value))
    if len(set(levels)) != len(levels):
        raise _err("levels", "a list without repeated levels", value)
    return levels


def _parse_families(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _err("families", f"a non-empty list of {', '.join(QUANTITY_FAMILIES)}", value)
    for v in value:
        if v not in QUANTITY_FAMILIES:
            raise _err("families", f"a list of {', '.join(QUANTITY_FAMILIES)}", v)
    if len(set(value)) != len(value):
        raise _err("families", "a list without repeated families", value)
    return tuple(value)


def _parse_actors(value: Any) -> ActorSpec:
    a = _mapping(value, "actors")
    known = set(ActorSpec.__dataclass_fields__)
    extra = set(a) - known
    if extra:
        raise _err("actors", f"a mapping with keys {', '.join(sorted(known))} only", sorted(extra))
    d = ActorSpec().to_dict()
    d.update(a)
    if not _is_int(d["count"]) or d["count"] < 1:
        raise _err("actors.count", "an int >= 1", d["count"])
    g = d["num_gpus"]
    if not _is_real(g) or g < 0 or (g > 1 and g != int(g)):
        raise _err("actors.num_gpus", "0, a fraction in (0, 1], or a whole number of GPUs", g)
    if not _is_real(d["num_cpus"]) or d["num_cpus"] < 0:
        raise _err("actors.num_cpus", "a real number >= 0", d["num_cpus"])
    mf = d["memory_fraction"]
    if mf is not None and (not _is_real(mf) or not 0 < mf <= 1):
        raise _err("actors.memory_fraction", "null or a fraction in (0, 1]", mf)
    for key, low in (("max_restarts", 0), ("max_task_retries", 0), ("max_attempts", 1)):
        if not _is_int(d[key]) or d[key] < low:
            raise _err(f"actors.{key}", f"an int >= {low}", d[key])
    env = d["env"] if d["env"] is not None else {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and k and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in env.items()):
        raise _err("actors.env", "a mapping of environment variable names to str (or number) values", env)
    if "XLA_PYTHON_CLIENT_MEM_FRACTION" in env and mf is not None:
        raise _err("actors.env", "free of XLA_PYTHON_CLIENT_MEM_FRACTION when actors.memory_fraction is set", sorted(env))
    return ActorSpec(
        count=d["count"], num_gpus=float(g), num_cpus=float(d["num_cpus"]),
        memory_fraction=None if mf is None else float(mf), max_restarts=d["max_restarts"],
        max_task_retries=d["max_task_retries"], max_attempts=d["max_attempts"],
        env=_Items((k, str(v)) for k, v in sorted(env.items())),
    )


def parse_spec(raw: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> SweepSpec:
    """Validate a spec given as plain data (a parsed YAML mapping).

    Parameters
    ----------
    raw
        The mapping.
    base_dir
        Directory a relative ``output_dir`` resolves against; ``None`` keeps it as given
        (relative to the working directory).

    Raises
    ------
    ValueError
        Naming the first invalid field, what was expected and what was given.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"A sweep spec must be a mapping of fields. Got {type(raw).__name__} instead.")
    raw = copy.deepcopy(dict(raw))
    unknown = set(raw) - set(_TOP_KEYS)
    if unknown:
        raise _err(sorted(unknown)[0], f"one of the spec fields {', '.join(_TOP_KEYS)}", sorted(unknown)[0])
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err("name", "a non-empty str of letters, digits, '_', '.', '-'", name)
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise _err("description", "a str", description)
    templates = _parse_templates(raw.get("templates"))
    seeds = _parse_seeds(raw)
    if "schedule" not in raw:
        raise _err("schedule", "a mapping {kind, args}", None)
    schedule = _parse_schedule(raw["schedule"])
    treatments = raw.get("treatments")
    if treatments is not None:
        if not isinstance(treatments, list) or len(treatments) < 2 or not all(isinstance(t, str) and t for t in treatments):
            raise _err("treatments", "null or a list of at least 2 names, control first", treatments)
        if len(set(treatments)) != len(treatments):
            raise _err("treatments", "a list of distinct names", treatments)
        treatments = tuple(treatments)
    bcf = _mapping(raw.get("bcf"), "bcf")
    _check_bcf(bcf, "bcf")
    bcf_grid = _grid(raw.get("bcf_grid"), "bcf_grid")
    for combo in _combinations(bcf_grid):
        _check_bcf({**bcf, **combo}, "bcf_grid")
    experiment = _parse_experiment(raw.get("experiment"))
    calibration = raw.get("calibration", False)
    if calibration is False or calibration is None:
        calibration = None
    elif not isinstance(calibration, str) or not calibration.strip():
        raise _err("calibration", "false/null (uncalibrated) or an artifact registry name or JSON path", calibration)
    else:
        _check_calibration(calibration)
    levels = _parse_levels(raw.get("levels", [0.5, 0.8, 0.9, 0.95]))
    families = _parse_families(raw.get("families", ["cate", "ate"]))
    actors = _parse_actors(raw.get("actors"))
    batch_size = raw.get("batch_size", 1)
    if not _is_int(batch_size) or batch_size < 1:
        raise _err("batch_size", "an int >= 1 (replications an actor advances together, one batched fit per round)", batch_size)
    output_dir = raw.get("output_dir")
    if output_dir is None:
        output_dir = os.path.join("sweep_output", name)
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise _err("output_dir", "a non-empty path", output_dir)
    if base_dir is not None and not os.path.isabs(output_dir):
        output_dir = os.path.normpath(os.path.join(os.fspath(base_dir), output_dir))
    spec = SweepSpec(
        name=name, templates=templates, seeds=seeds, schedule=schedule, bcf=_freeze(bcf),
        bcf_grid=_freeze(bcf_grid), treatments=treatments, experiment=_freeze(experiment),
        calibration=calibration, levels=levels, families=families, actors=actors,
        output_dir=output_dir, description=description, batch_size=int(batch_size),
    )
    expand_tasks(spec)  # repeated cells are an error
    return spec


def load_spec(path: str | os.PathLike[str], *, output_dir: str | None = None) -> SweepSpec:
    """Read and validate a spec YAML file.

    A relative ``output_dir`` in the file is read relative to the current working directory
    (like every path a command-line tool is given); ``output_dir`` overrides it.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No sweep spec at {str(p)!r}.")
    with open(p, encoding="utf-8") as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ValueError(f"The sweep spec {str(p)!r} is not valid YAML: {err}") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"The sweep spec {str(p)!r} must hold a mapping of fields. Got {type(raw).__name__} instead.")
    if output_dir is not None:
        raw = {**raw, "output_dir": output_dir}
    return parse_spec(raw)


def spec_from(value: "SweepSpec | Mapping[str, Any] | str | os.PathLike[str]") -> SweepSpec:
    """Accept a spec object, a mapping, or a YAML path."""
    if isinstance(value, SweepSpec):
        return value
    if isinstance(value, Mapping):
        return parse_spec(value)
    if isinstance(value, (str, os.PathLike)):
        return load_spec(value)
    raise TypeError(f"The 'spec' parameter must be a SweepSpec, a mapping or a YAML path. Got {type(value).__name__} instead.")
