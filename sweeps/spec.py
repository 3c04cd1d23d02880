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
    experiment: {max_segment_depth: 2}      # optional keyword arguments of SequentialExperiment:
    #   min_control_weight, min_explore_weight, max_segment_depth, min_segment_share,
    #   stability_method (means | posterior), ship_spending (bonferroni | obrien_fleming | none),
    #   thresholds: {min_effect: 0.02, ...} (DecisionThresholds fields; the graduation rule's,
    #   spent over the rounds by ship_spending, and what decision rows are read with),
    #   skip_analysis: [stability, policy_value] (analysis steps the records do not read; a
    #   coverage sweep's. stability: NaN segment scores, so no credible-segment or segment
    #   graduation claims; GATE records still get the policy tree)
    calibration: false                      # false/null: uncalibrated (default); or an artifact
    levels: [0.5, 0.8, 0.9, 0.95]           # nominal levels whose coverage is recorded
    families: [cate, ate]                   # quantity families recorded
    actors: {count: 2, num_gpus: 0, num_cpus: 1, memory_fraction: null,   # num_gpus 0.5: 2 per GPU
             max_restarts: 3, max_task_retries: 2, max_attempts: 3, env: {}}
    output_dir: sweep_output/tiny_sweep     # relative to the working dir; default sweep_output/<name>
    batch_size: 1                           # replications an actor advances in lockstep, one
    #   batched fit per round (sweeps.lockstep); not part of task ids: it does not change results

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

The module holds the spec's dataclasses and the grid expansion; reading and validating the YAML
is :mod:`sweeps.spec_yaml` (``parse_spec``, ``load_spec``, ``spec_from``, re-exported here), and
the frozen-data helpers that make a task hashable are :mod:`sweeps._frozen`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pytyche._validation import error_for

from sweeps import population as _pop
from sweeps._frozen import _freeze, _thaw_items, canonical_json

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

_TOP_KEYS = (
    "name", "templates", "replications", "seed", "seeds", "schedule", "treatments", "bcf",
    "bcf_grid", "experiment", "calibration", "levels", "families", "actors", "output_dir",
    "description", "batch_size",
)
_WHERE = "SweepSpec"

#: the MODEL_VERSION current when task ids began to name the model: its tasks hash as before
FINGERPRINTED_SINCE = 3


#: ``_err(name, expected, got)``: the ValueError for a bad spec field (YAML fields, long values shown)
_err = error_for(_WHERE, noun="field", width=120)


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
        ``population`` key), so existing sweeps keep their task ids and resume. The model the
        task fits (:data:`~pytyche.bcf.fingerprint.MODEL_VERSION`) is part of it from the first
        version after :data:`FINGERPRINTED_SINCE`, the version current when fingerprints were
        introduced (whose tasks hash as before): a sweep resumed after a model change reruns
        every task rather than mixing two models' records."""
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
        from pytyche.bcf.fingerprint import MODEL_VERSION

        if MODEL_VERSION != FINGERPRINTED_SINCE:
            ident["model_version"] = MODEL_VERSION
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
    batch_size: int = 1

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
            "batch_size": self.batch_size,
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
        from sweeps.spec_yaml import parse_spec  # the reader imports this module

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


def __getattr__(name: str) -> Any:
    """The YAML reader, re-exported lazily (``from sweeps.spec import parse_spec`` keeps working,
    and importing ``sweeps.spec_yaml`` first is no circular import)."""
    if name in ("load_spec", "parse_spec", "spec_from"):
        from sweeps import spec_yaml

        return getattr(spec_yaml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
