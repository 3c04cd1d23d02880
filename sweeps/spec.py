"""The sweep spec: a YAML file naming the grid of DGP templates x settings x seeds to run.

A spec is validated once, when it is loaded, and every error names the field that is wrong::

    name: tiny_sweep                        # required, [A-Za-z0-9_.-]+
    templates:                              # required, at least one
      - name: clustered_realistic           # a dgps.registry template
        params: {conversion_scale: 2.0}     # fixed keyword arguments of make_generator
        grid: {effect_scale: [0.5, 1.0]}    # optional: one grid cell per combination
    replications: 4                         # seeds seed .. seed+replications-1 ...
    seed: 0
    # seeds: [11, 12, 13]                   # ... or an explicit seed list (not both)
    schedule: {kind: geometric, args: {initial: 400, growth: 2.0, n_rounds: 2}}
    treatments: null                        # optional list, control first; null = template default
    bcf: {num_trees_mu: 20, num_trees_tau: 10, num_burnin: 40, num_draws: 40}   # -> GPUBCFConfig
    bcf_grid: {num_trees_tau: [10, 20]}     # optional: BCF settings swept as grid cells
    experiment: {max_segment_depth: 2}      # optional keyword arguments of SequentialExperiment
    calibration: false                      # false/null: uncalibrated (default); or an artifact
    levels: [0.5, 0.8, 0.9, 0.95]           # nominal levels whose coverage is recorded
    families: [cate, ate]                   # quantity families recorded
    actors: {count: 2, num_gpus: 0, num_cpus: 1, memory_fraction: null,   # num_gpus 0.5: 2 per GPU
             max_restarts: 3, max_task_retries: 2, max_attempts: 3, env: {}}
    output_dir: sweep_output/tiny_sweep     # relative to the working dir; default sweep_output/<name>

A template parameter or a schedule argument may instead be a distribution drawn per replication
(a DGP population, see :mod:`sweeps.population`), e.g. ``effect_scale: {uniform: [0, 1.5]}`` or
``per_round: {loguniform: [1000, 20000], integer: true}``.

The grid expands to :class:`Task` objects: one per (template, template-grid combination,
BCF-grid combination, seed); a task carries its drawn values in ``params`` / ``schedule`` and the
distributions in ``population`` (its grid cell is the population, not the draws). A task is
frozen, pickles cleanly, and has a stable id: the first 16 hex digits of the sha256 of its
canonical JSON (sorted keys, no whitespace). The id covers exactly
what changes the task's result (not the sweep's name, actor layout or output directory), so a
renamed or re-laid-out sweep still resumes from the shards it already wrote.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytyche._validation import error_for
from pytyche.contracts.truth import QUANTITY_FAMILIES

from sweeps import population as _pop

__all__ = [
    "ActorSpec",
    "ScheduleSpec",
    "SweepSpec",
    "Task",
    "TemplateSpec",
    "canonical_json",
    "expand_tasks",
    "load_spec",
    "parse_spec",
]

SCHEDULE_KINDS = ("geometric", "fixed", "explicit")
_SCHEDULE_ARGS = {
    "geometric": ({"initial", "n_rounds"}, {"growth"}),
    "fixed": ({"per_round", "n_rounds"}, set()),
    "explicit": ({"sizes"}, set()),
}
# SequentialExperiment keyword arguments a spec may set (the rest are owned by the task runner)
EXPERIMENT_KEYS = (
    "min_control_weight",
    "min_explore_weight",
    "max_segment_depth",
    "min_segment_share",
)
_TOP_KEYS = (
    "name", "templates", "replications", "seed", "seeds", "schedule", "treatments", "bcf",
    "bcf_grid", "experiment", "calibration", "levels", "families", "actors", "output_dir",
    "description",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WHERE = "SweepSpec"


#: ``_err(name, expected, got)``: the ValueError for a bad spec field (YAML fields, long values shown)
_err = error_for(_WHERE, noun="field", width=120)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form task ids are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value: Any, name: str) -> Any:
    """Deep copy of a YAML value as JSON-able plain data (tuples become lists)."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _err(name, "a mapping with str keys", value)
            out[k] = _plain(v, f"{name}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _err(name, "finite numbers", value)
        return value
    raise _err(name, "plain YAML data (numbers, strings, booleans, lists, mappings)", value)


class _Items(tuple):
    """A frozen mapping: a tuple of sorted ``(key, value)`` pairs (hashable, pickles cleanly)."""

    __slots__ = ()


def _freeze(value: Any) -> Any:
    """Hashable, immutable form of plain data: mappings -> :class:`_Items`, lists -> tuples."""
    if isinstance(value, Mapping):
        return _Items((k, _freeze(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)) and not isinstance(value, _Items):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_items(items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: _thaw(v) for k, v in items}


def _thaw(value: Any) -> Any:
    if isinstance(value, _Items):
        return _thaw_items(value)
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


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


def _combinations(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass(frozen=True)
class TemplateSpec:
    """One DGP template of the grid: ``make_generator(name, **params, **grid_combination)``."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    grid: tuple[tuple[str, Any], ...] = ()

    @property
    def params_dict(self) -> dict[str, Any]:
        return _thaw_items(self.params)

    @property
    def grid_dict(self) -> dict[str, list[Any]]:
        return _thaw_items(self.grid)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "params": self.params_dict}
        if self.grid:
            out["grid"] = self.grid_dict
        return out


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule by kind: ``geometric`` (initial, growth, n_rounds), ``fixed`` (per_round,
    n_rounds) or ``explicit`` (sizes). Sweeps need a bounded schedule, so ``n_rounds`` is required."""

    kind: str
    args: tuple[tuple[str, Any], ...]

    @property
    def args_dict(self) -> dict[str, Any]:
        return _thaw_items(self.args)

    @property
    def n_rounds(self) -> int:
        a = self.args_dict
        return len(a["sizes"]) if self.kind == "explicit" else int(a["n_rounds"])

    @property
    def has_population(self) -> bool:
        """Whether some argument is a distribution drawn per replication."""
        a = self.args_dict
        values = list(a.values()) + (list(a["sizes"]) if self.kind == "explicit" else [])
        return any(_pop.is_distribution(v) for v in values)

    def drawn(self, *, seed: int, replication: int, template: str) -> tuple["ScheduleSpec", dict[str, Any]]:
        """The concrete schedule of one replication and its drawn values (``{"schedule.per_round": 4012}``)."""
        a = self.args_dict
        draws: dict[str, Any] = {}

        def value(key: str, v: Any) -> Any:
            if not _pop.is_distribution(v):
                return v
            draws[key] = _pop.draw(v, seed=seed, replication=replication, template=template, key=key)
            return draws[key]

        out = {k: value(f"schedule.{k}", v) for k, v in a.items() if k != "sizes"}
        if "sizes" in a:
            out["sizes"] = [value(f"schedule.sizes.{i}", v) for i, v in enumerate(a["sizes"])]
        return ScheduleSpec(kind=self.kind, args=_freeze(out)), draws

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "args": self.args_dict}

    def build(self) -> Any:
        """The ``pytyche.experiment`` schedule object."""
        from pytyche.experiment.schedules import ExplicitSchedule, FixedSchedule, GeometricSchedule

        a = self.args_dict
        if self.kind == "geometric":
            return GeometricSchedule(initial=a["initial"], growth=a.get("growth", 2.0), n_rounds=a["n_rounds"])
        if self.kind == "fixed":
            return FixedSchedule(per_round=a["per_round"], n_rounds=a["n_rounds"])
        return ExplicitSchedule(tuple(a["sizes"]))


@dataclass(frozen=True)
class ActorSpec:
    """The actor pool.

    Attributes
    ----------
    count
        Number of :class:`~sweeps.actor.SweepWorker` actors (each runs one task at a time).
    num_gpus
        GPUs per actor: ``1`` pins one GPU each, ``0.5`` packs two actors per GPU, ``0`` runs CPU
        actors (the default on a machine without a GPU).
    num_cpus
        CPUs reserved per actor (logical, for Ray's scheduler).
    memory_fraction
        ``XLA_PYTHON_CLIENT_MEM_FRACTION`` of each actor's process (``None``: JAX's default,
        75%; set it to about ``num_gpus`` times 0.9 when actors share a GPU).
    max_restarts, max_task_retries
        Ray's actor fault tolerance: a crashed actor process is restarted up to ``max_restarts``
        times and its in-flight call retried up to ``max_task_retries`` times.
    max_attempts
        Driver-side attempts per task across actor deaths (a task whose actor keeps dying is
        resubmitted, to a fresh actor if needed, at most this many times in all).
    env
        Extra environment variables of the actor processes (Ray runtime environment), e.g.
        ``XLA_FLAGS`` or ``XLA_PYTHON_CLIENT_PREALLOCATE``.
    """

    count: int = 1
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    memory_fraction: float | None = None
    max_restarts: int = 3
    max_task_retries: int = 2
    max_attempts: int = 3
    env: tuple[tuple[str, str], ...] = ()

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count, "num_gpus": self.num_gpus, "num_cpus": self.num_cpus,
            "memory_fraction": self.memory_fraction, "max_restarts": self.max_restarts,
            "max_task_retries": self.max_task_retries, "max_attempts": self.max_attempts,
            "env": self.env_dict,
        }


@dataclass(frozen=True)
class Task:
    """One cell of the grid at one seed: a full sequential experiment to run.

    Everything here is plain frozen data (tuples of ``(key, value)`` pairs for mappings), so a
    task pickles cleanly to any actor and hashes to the same :attr:`task_id` on every machine.
    """

    template: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    replication: int
    schedule: ScheduleSpec
    bcf: tuple[tuple[str, Any], ...]
    treatments: tuple[str, ...] | None = None
    experiment: tuple[tuple[str, Any], ...] = ()
    calibration: str | None = None
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    families: tuple[str, ...] = ("cate", "ate")
    sweep: str = field(default="", compare=False)
    population: tuple[tuple[str, Any], ...] = ()

    @property
    def params_dict(self) -> dict[str, Any]:
        return _thaw_items(self.params)

    @property
    def population_dict(self) -> dict[str, Any]:
        """The distributions this task's drawn values came from: template parameter name ->
        distribution, and ``"schedule"`` -> the spec's schedule (with its distributions)."""
        return _thaw_items(self.population)

    @property
    def draws(self) -> dict[str, Any]:
        """The values drawn for this replication: drawn template parameters by name, drawn schedule
        arguments as ``schedule.<arg>`` (``schedule.sizes.<i>``). Empty without a population."""
        pop = self.population_dict
        params = self.params_dict
        out = {k: params[k] for k in sorted(pop) if k != "schedule"}
        if "schedule" in pop:
            spec_schedule = pop["schedule"]
            _, drawn = ScheduleSpec(spec_schedule["kind"], _freeze(spec_schedule["args"])).drawn(
                seed=self.seed, replication=self.replication, template=self.template
            )
            out.update(drawn)
        return out

    @property
    def bcf_dict(self) -> dict[str, Any]:
        return _thaw_items(self.bcf)

    @property
    def experiment_dict(self) -> dict[str, Any]:
        return _thaw_items(self.experiment)

    def identity(self) -> dict[str, Any]:
        """What determines the task's result (hashed into :attr:`task_id`).

        A task without a population hashes exactly as before populations existed (no
        ``population`` key), so existing sweeps keep their task ids and resume."""
        ident = {
            "template": self.template,
            "params": self.params_dict,
            "seed": self.seed,
            "replication": self.replication,
            "schedule": self.schedule.to_dict(),
            "bcf": self.bcf_dict,
            "treatments": None if self.treatments is None else list(self.treatments),
            "experiment": self.experiment_dict,
            "calibration": self.calibration,
            "levels": list(self.levels),
            "families": list(self.families),
        }
        if self.population:
            ident["population"] = self.population_dict
        return ident

    def cell_identity(self) -> dict[str, Any]:
        """The grid cell: the identity without the seed and replication, and with the population's
        distributions in place of the values drawn for this replication."""
        ident = self.identity()
        del ident["seed"], ident["replication"]
        pop = self.population_dict
        ident["params"] = {k: v for k, v in ident["params"].items() if k not in pop}
        if "schedule" in pop:
            ident["schedule"] = pop["schedule"]
        return ident

    @property
    def task_id(self) -> str:
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:16]

    @property
    def cell_id(self) -> str:
        return hashlib.sha256(canonical_json(self.cell_identity()).encode()).hexdigest()[:16]

    @property
    def cell_label(self) -> str:
        """Readable name of the grid cell: the template and its grid/BCF values."""
        parts = [self.template]
        pop = self.population_dict
        parts += [f"{k}={v}" for k, v in sorted(self.params_dict.items()) if k not in pop]
        parts += [f"{k}~{_pop.describe(v)}" for k, v in sorted(pop.items()) if k != "schedule"]
        if "schedule" in pop:
            args = pop["schedule"]["args"]
            parts += [f"schedule.{k}~{_pop.describe(v)}" for k, v in sorted(args.items()) if _pop.is_distribution(v)]
            parts += [f"schedule.sizes.{i}~{_pop.describe(v)}" for i, v in enumerate(args.get("sizes", [])) if _pop.is_distribution(v)]
        parts += [f"bcf.{k}={v}" for k, v in sorted(self.bcf_dict.items())]
        return " ".join(parts)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring for the YAML layout)."""

    name: str
    templates: tuple[TemplateSpec, ...]
    seeds: tuple[int, ...]
    schedule: ScheduleSpec
    bcf: tuple[tuple[str, Any], ...] = ()
    bcf_grid: tuple[tuple[str, Any], ...] = ()
    treatments: tuple[str, ...] | None = None
    experiment: tuple[tuple[str, Any], ...] = ()
    calibration: str | None = None
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    families: tuple[str, ...] = ("cate", "ate")
    actors: ActorSpec = ActorSpec()
    output_dir: str = ""
    description: str = ""

    @property
    def bcf_dict(self) -> dict[str, Any]:
        return _thaw_items(self.bcf)

    @property
    def bcf_grid_dict(self) -> dict[str, list[Any]]:
        return _thaw_items(self.bcf_grid)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`parse_spec` reads back to an equal spec."""
        return {
            "name": self.name,
            "description": self.description,
            "templates": [t.to_dict() for t in self.templates],
            "seeds": list(self.seeds),
            "schedule": self.schedule.to_dict(),
            "treatments": None if self.treatments is None else list(self.treatments),
            "bcf": self.bcf_dict,
            "bcf_grid": self.bcf_grid_dict,
            "experiment": _thaw_items(self.experiment),
            "calibration": self.calibration,
            "levels": list(self.levels),
            "families": list(self.families),
            "actors": self.actors.to_dict(),
            "output_dir": self.output_dir,
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "SweepSpec":
        """A re-validated copy with top-level fields changed (YAML-style values)."""
        d = self.to_dict()
        for k, v in changes.items():
            if k not in _TOP_KEYS:
                raise _err(k, f"one of the spec fields {', '.join(_TOP_KEYS)}", k)
            d[k] = v
        if "replications" in changes or "seed" in changes:
            d.pop("seeds", None)
        return parse_spec(d)

    def tasks(self) -> list[Task]:
        """Expand the grid (see :func:`expand_tasks`)."""
        return expand_tasks(self)

    def check_templates(self) -> None:
        """Check every template name against ``dgps.registry`` (the default task runner needs it).

        Raises
        ------
        ValueError
            Naming the unknown template and the registered ones.
        """
        from dgps.registry import list_templates

        names = set(list_templates())
        for i, t in enumerate(self.templates):
            if t.name not in names:
                raise _err(f"templates[{i}].name", f"a registered DGP template ({', '.join(sorted(names))})", t.name)
        self.check_population()

    def check_population(self) -> None:
        """Check each distribution of a registered template: its parameter is one the template's
        ``make`` takes, and the template accepts the distribution's extreme values (bounds, or
        every choice).

        Raises
        ------
        ValueError
            Naming ``templates[i].params.<name>`` and what the template expects.
        """
        from sweeps.template_params import check_template_param

        for i, t in enumerate(self.templates):
            for key, dist in t.params_dict.items():
                if _pop.is_distribution(dist):
                    check_template_param(t.name, key, dist, field=f"templates[{i}].params.{key}")


def expand_tasks(spec: SweepSpec) -> list[Task]:
    """All tasks of the grid, in a deterministic order.

    Order: templates as listed, then their grid combinations (sorted keys), then BCF-grid
    combinations, then seeds. Every task id is distinct (a repeated cell is an error).
    """
    out: list[Task] = []
    bcf_base = spec.bcf_dict
    for t in spec.templates:
        fixed = t.params_dict
        dists = {k: v for k, v in fixed.items() if _pop.is_distribution(v)}
        pop = dict(dists)
        if spec.schedule.has_population:
            pop["schedule"] = spec.schedule.to_dict()
        for combo in _combinations(t.grid_dict):
            for bcombo in _combinations(spec.bcf_grid_dict):
                bcf = {**bcf_base, **bcombo}
                for rep, seed in enumerate(spec.seeds):
                    drawn = {
                        k: _pop.draw(d, seed=seed, replication=rep, template=t.name, key=k) for k, d in dists.items()
                    }
                    params = {**fixed, **combo, **drawn}
                    schedule = spec.schedule
                    if spec.schedule.has_population:
                        schedule, _ = spec.schedule.drawn(seed=seed, replication=rep, template=t.name)
                    out.append(
                        Task(
                            template=t.name,
                            params=_freeze(params),
                            seed=seed,
                            replication=rep,
                            schedule=schedule,
                            bcf=_freeze(bcf),
                            treatments=spec.treatments,
                            experiment=spec.experiment,
                            calibration=spec.calibration,
                            levels=spec.levels,
                            families=spec.families,
                            sweep=spec.name,
                            population=_freeze(pop),
                        )
                    )
    ids = [t.task_id for t in out]
    if len(set(ids)) != len(ids):
        raise _err("templates", "a grid without repeated cells (two entries expand to the same task)", spec.name)
    return out


# ---- parsing ----------------------------------------------------------------------------------


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
    experiment = _mapping(raw.get("experiment"), "experiment")
    extra = set(experiment) - set(EXPERIMENT_KEYS)
    if extra:
        raise _err("experiment", f"a mapping of SequentialExperiment settings ({', '.join(EXPERIMENT_KEYS)})", sorted(extra))
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
        output_dir=output_dir, description=description,
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
