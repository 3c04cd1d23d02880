"""Replications in lockstep: B sweep tasks advanced together, one batched fit per round.

:func:`run_lockstep` runs the tasks of a group (a spec's ``batch_size`` replications of one grid
cell, see :func:`group_tasks`) as :func:`sweeps.task.run_task` runs one, but round by round
together: each live task prepares its round
(:meth:`~pytyche.experiment.SequentialExperiment.prepare_round`), the prepared fits run as one
batched MCMC (:func:`pytyche.bcf.request.fit_batch`), and each task finishes its round
(:meth:`~pytyche.experiment.SequentialExperiment.finish_round`) and records its rows
(:func:`sweeps.task.round_rows`). On the CPU a batched fit's posteriors are bitwise the unbatched
ones, so each task's rows are those :func:`run_task` gives it alone.

Members leave the group on their own:

- a task the model refuses (:class:`pytyche.InsufficientDataError`, at any step of a round)
  finishes there with the rows of its earlier rounds and the reason, as :func:`run_task` records it;
- a task that fails (any other error) leaves with the error text, and the pool reports it failed;
- a task whose schedule is exhausted finishes.

The others go on. Fallback when the fits of a round cannot share one program: the prepared fits
are grouped by :meth:`~pytyche.bcf.request.FitRequest.same_program` (batch key, and config but
the seed); a group of two or more runs batched, a task alone in its group fits unbatched (the
programs a single task uses, so an odd one out compiles nothing new). A batched fit that raises
(e.g. one dataset's draws not finite, or the batch's memory estimate too large) is rerun one
task at a time, so the error lands on the task it belongs to.

Compilation: a batched program is compiled per batch size, so the B - 1, B - 2, ... groups left
after refusals compile their own programs once per actor.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.spec import Task
    from sweeps.task import TaskResult

__all__ = ["MemberOutcome", "group_tasks", "run_group", "run_lockstep"]


@dataclass(frozen=True)
class MemberOutcome:
    """One task's end in a group.

    Attributes
    ----------
    task_id
        The task's id.
    result
        Its :class:`~sweeps.task.TaskResult`, or ``None`` when it failed.
    error
        ``None`` on success (refusals included), else the error with its traceback.
    """

    task_id: str
    result: "TaskResult | None"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def group_tasks(tasks: Sequence["Task"], batch_size: int) -> list[tuple["Task", ...]]:
    """Split ``tasks`` into groups of at most ``batch_size`` tasks of one grid cell.

    Tasks of one cell share their template, schedule, BCF and experiment settings, so their
    datasets share a batch key at every round unless their data make them differ (the lockstep
    runner's fallback covers that). Groups keep the tasks' order: cells in order of first
    appearance, and within a cell consecutive tasks.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"The 'batch_size' parameter of group_tasks must be an int >= 1. Got {batch_size!r} instead.")
    cells: dict[str, list["Task"]] = {}
    for t in tasks:
        cells.setdefault(t.cell_id, []).append(t)
    return [tuple(ts[i:i + batch_size]) for ts in cells.values() for i in range(0, len(ts), batch_size)]


def _error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__)).strip()


@dataclass
class _Member:
    """One task's progress through the group."""

    task: "Task"
    exp: Any = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    n_rounds: int = 0
    seconds: float = 0.0  # its own steps' time plus its share of the batched fits
    refused: str | None = None
    error: str | None = None
    done: bool = False

    def outcome(self) -> MemberOutcome:
        from sweeps.task import TaskResult

        if self.error is not None:
            return MemberOutcome(self.task.task_id, None, self.error)
        result = TaskResult(task_id=self.task.task_id, records=tuple(self.rows), seconds=self.seconds,
                            n_rounds=self.n_rounds, refused=self.refused)
        return MemberOutcome(self.task.task_id, result)

    def step(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one step of this task, timed; a refusal or an error ends the task here.

        Returns ``(True, value)``, or ``(False, None)`` when the task ended (exhausted, refused
        or failed)."""
        from pytyche import InsufficientDataError

        t0 = time.perf_counter()
        try:
            return True, fn()
        except StopIteration:  # the schedule is exhausted
            self.done = True
        except InsufficientDataError as err:  # a dataset the model cannot fit, not a bug
            self.refused, self.done = f"round {self.n_rounds}: {err}", True
        except Exception as err:  # noqa: BLE001 - the task fails; the others go on
            self.error, self.done = _error_text(err), True
        finally:
            self.seconds += time.perf_counter() - t0
        return False, None


def _fit_round(members: list[_Member], prepared: list[Any]) -> list[tuple[bool, Any]]:
    """The round's posteriors of ``members`` (their ``prepared`` rounds): batched where the fits
    share a program, alone otherwise; ``(ok, posterior)`` per member."""
    from pytyche.bcf.request import fit_batch

    out: list[tuple[bool, Any]] = [(False, None)] * len(members)
    groups: dict[Any, list[int]] = {}
    for i, (m, p) in enumerate(zip(members, prepared)):
        ok, key = m.step(p.request.same_program)
        if ok:
            groups.setdefault(key, []).append(i)
    for idx in groups.values():
        if len(idx) > 1:
            t0 = time.perf_counter()
            try:
                posteriors = fit_batch([prepared[i].request for i in idx])
            except Exception:  # noqa: BLE001 - rerun one by one, so the error lands on its task
                posteriors = None
            share = (time.perf_counter() - t0) / len(idx)
            if posteriors is not None:
                for i, post in zip(idx, posteriors):
                    members[i].seconds += share
                    out[i] = (True, post)
                continue
            for i in idx:
                members[i].seconds += share
        for i in idx:
            out[i] = members[i].step(prepared[i].fit)
    return out


def run_lockstep(tasks: Sequence["Task"]) -> list[MemberOutcome]:
    """Run sweep tasks as :func:`sweeps.task.run_task` does, in lockstep: one batched fit per round.

    Parameters
    ----------
    tasks
        The group (any tasks; those of one grid cell share their batched fits, see
        :func:`group_tasks`).

    Returns
    -------
    list of MemberOutcome
        One per task, in order: its :class:`~sweeps.task.TaskResult` (``seconds`` is its own
        steps' time plus an equal share of each batched fit it was part of), or its error.
    """
    from pytyche.experiment import UncalibratedWarning

    from sweeps.task import build_experiment, round_rows

    members = [_Member(t) for t in tasks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncalibratedWarning)
        for m in members:
            ok, m.exp = m.step(lambda m=m: build_experiment(m.task))
        live = [m for m in members if not m.done]
        while live:
            prepared = [m.step(m.exp.prepare_round) for m in live]
            live = [m for m in live if not m.done]
            rounds = [p for ok, p in prepared if ok]
            fits = _fit_round(live, rounds)
            for m, p, (ok, posterior) in zip(live, rounds, fits):
                if not ok:
                    continue

                def finish(m: _Member = m, p: Any = p, posterior: Any = posterior) -> None:
                    rows = round_rows(m.task, m.exp.finish_round(p, posterior))
                    m.rows.extend(rows)
                    m.n_rounds += 1

                m.step(finish)
            live = [m for m in live if not m.done]
    return [m.outcome() for m in members]


def run_group(tasks: Sequence["Task"], runner: Callable[["Task"], "TaskResult"]) -> list[MemberOutcome]:
    """Run a group with a per-task ``runner`` (a custom runner has no lockstep form): one task
    after another, an error ending only its own task."""
    out = []
    for task in tasks:
        try:
            out.append(MemberOutcome(task.task_id, runner(task)))
        except Exception as err:  # noqa: BLE001 - the task fails; the others go on
            out.append(MemberOutcome(task.task_id, None, _error_text(err)))
    return out
