"""``WorkerPool``: feed tasks to a fixed set of actors, one task in flight per actor.

A small ``ray.wait``-based pool in the spirit of ``ray.util.ActorPool``, with what that one
lacks for long sweeps: it survives actor death. Each idle actor takes the next queued task (so
fast and slow actors stay balanced); results come back in completion order.

Failure handling, per outcome of a task's call:

- the actor died or became unreachable (``RayActorError``: process crash, node loss, restarts
  exhausted): the task goes back to the front of the queue until it has been tried
  ``max_attempts`` times; a permanently dead actor (``ActorDiedError``) is replaced by a fresh
  one from ``make_worker``. An actor that is only *unavailable* (``ActorUnavailableError``:
  Ray is restarting it, e.g. on another node after its node was lost) gets no new task until a
  cheap probe call (``tasks_done``) answers; if it is still unreachable after
  ``unavailable_timeout`` seconds, or turns out dead, it is replaced. (Without the probe, the
  requeued task went straight back to the restarting actor and used up its attempts in
  milliseconds.) (Crashes Ray already retried inside the actor, with
  ``max_restarts``/``max_task_retries``, never reach the pool.)
- the task raised (``RayTaskError``: a bug or bad input, which would fail again): returned as a
  failed :class:`FinishedTask` at once, not retried.

Groups (:meth:`WorkerPool.submit_groups`, a spec's ``batch_size`` > 1): a group of tasks is one
call, ``run_batch(tasks)`` (:meth:`sweeps.actor.SweepWorker.run_batch`), which answers one outcome
per task; each becomes its own :class:`FinishedTask`, failed or not. An actor death requeues the
whole group (its attempts counted once per call); a group call that raised fails each of its tasks.

Every task yields exactly one :class:`FinishedTask`.
"""

from __future__ import annotations

import collections
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytyche._validation import invalid

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.spec import Task
    from sweeps.task import TaskResult

__all__ = ["FinishedTask", "WorkerPool"]

_WAIT_SLICE = 1.0  # seconds per ray.wait call
_PROBE_PAUSE = 0.5  # seconds between probes of an unavailable actor


@dataclass(frozen=True)
class FinishedTask:
    """The end of one task in the pool.

    Attributes
    ----------
    task
        The task.
    result
        Its :class:`~sweeps.task.TaskResult`, or ``None`` when it failed.
    error
        ``None`` on success; otherwise the error text (traceback for task errors).
    attempts
        Calls made (more than 1 after actor deaths).
    worker_index
        Slot of the actor that produced the outcome.
    """

    task: "Task"
    result: "TaskResult | None"
    error: str | None
    attempts: int
    worker_index: int

    @property
    def ok(self) -> bool:
        return self.error is None


#: what one call runs: a task (``run``), or a group of tasks (``run_batch``)
_Unit = Any


@dataclass
class _Call:
    unit: _Unit
    attempts: int
    worker_index: int

    @property
    def tasks(self) -> tuple["Task", ...]:
        return self.unit if isinstance(self.unit, tuple) else (self.unit,)


class WorkerPool:
    """A pool of ``size`` actors fed from a queue.

    Parameters
    ----------
    make_worker
        ``make_worker(index) -> actor handle`` with a ``run(task)`` method (a
        :class:`~sweeps.actor.SweepWorker`); called for each slot at start and again to replace
        a dead actor.
    size
        Number of actors (>= 1).
    max_attempts
        Calls per task across actor deaths before it is reported failed (>= 1).
    unavailable_timeout
        Seconds an unavailable (restarting) actor may take to answer a probe before it is
        replaced.

    Examples
    --------
    >>> pool = WorkerPool(lambda i: create_worker(spec.actors), size=2)  # doctest: +SKIP
    >>> pool.submit_all(tasks)                                           # doctest: +SKIP
    >>> while pool.has_next():                                           # doctest: +SKIP
    ...     outcome = pool.get_next_unordered()
    """

    def __init__(self, make_worker: Callable[[int], Any], size: int, *, max_attempts: int = 3, unavailable_timeout: float = 300.0) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise invalid("size", "WorkerPool", "an int >= 1", size)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise invalid("max_attempts", "WorkerPool", "an int >= 1", max_attempts)
        self._make_worker = make_worker
        self._max_attempts = max_attempts
        self._workers: list[Any] = [make_worker(i) for i in range(size)]
        self._idle: collections.deque[int] = collections.deque(range(size))
        self._queue: collections.deque[tuple[_Unit, int]] = collections.deque()
        self._ready: collections.deque[FinishedTask] = collections.deque()  # a group's outcomes not yet returned
        self._in_flight: dict[Any, _Call] = {}
        self._probes: dict[Any, tuple[int, float]] = {}  # probe ref -> (slot, unavailable since)
        self._unavailable_timeout = float(unavailable_timeout)
        self._replaced = 0
        self._resubmitted = 0

    # ---- submission -------------------------------------------------------------------------
    def submit(self, task: "Task") -> None:
        """Queue a task; it starts as soon as an actor is idle."""
        self._queue.append((task, 0))
        self._dispatch()

    def submit_all(self, tasks: Iterable["Task"]) -> None:
        for task in tasks:
            self._queue.append((task, 0))
        self._dispatch()

    def submit_groups(self, groups: Iterable[tuple["Task", ...]]) -> None:
        """Queue groups of tasks; each runs as one ``run_batch`` call on one actor (a group of
        one task runs as :meth:`submit` runs it)."""
        for group in groups:
            group = tuple(group)
            self._queue.append((group if len(group) > 1 else group[0], 0))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            index = self._idle.popleft()
            unit, attempts = self._queue.popleft()
            if isinstance(unit, tuple):
                ref = self._workers[index].run_batch.remote(list(unit))
            else:
                ref = self._workers[index].run.remote(unit)
            self._in_flight[ref] = _Call(unit, attempts + 1, index)

    def _finish_all(self, call: _Call, error: str) -> FinishedTask:
        """Every task of ``call`` failed with ``error``: queue their outcomes, return the first."""
        for task in call.tasks:
            self._ready.append(FinishedTask(task, None, error, call.attempts, call.worker_index))
        return self._ready.popleft()

    # ---- results ----------------------------------------------------------------------------
    def has_next(self) -> bool:
        """Whether any task is queued or running."""
        return bool(self._in_flight or self._queue or self._ready)

    def _probe(self, index: int, since: float) -> None:
        """Hold slot ``index`` back until its actor answers a cheap call."""
        self._probes[self._workers[index].tasks_done.remote()] = (index, since)

    def _probe_answered(self, ref: Any) -> None:
        import ray
        from ray.exceptions import ActorDiedError, RayActorError

        index, since = self._probes.pop(ref)
        try:
            ray.get(ref)
        except ActorDiedError:
            self._replace(index)
        except RayActorError:  # still unavailable: probe again, or give up on it
            if time.monotonic() - since < self._unavailable_timeout:
                time.sleep(_PROBE_PAUSE)
                self._probe(index, since)
                return
            self._replace(index)
        except Exception:  # noqa: BLE001 - anything else: a fresh actor is the safe choice
            self._replace(index)
        self._idle.append(index)

    def get_next_unordered(self, timeout: float | None = None) -> FinishedTask:
        """The next task to end, in completion order.

        Parameters
        ----------
        timeout
            Seconds to wait; ``None`` waits as long as it takes.

        Raises
        ------
        StopIteration
            When no task is queued or running.
        TimeoutError
            When nothing ended within ``timeout``.
        """
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        if self._ready:
            return self._ready.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._dispatch()
            if not self._in_flight and not (self._queue and self._probes):
                raise StopIteration("No task is queued or running in the WorkerPool.")
            # wait in short slices so Ctrl-C (KeyboardInterrupt) reaches the driver promptly
            left = _WAIT_SLICE if deadline is None else max(0.0, min(_WAIT_SLICE, deadline - time.monotonic()))
            ready, _ = ray.wait(list(self._in_flight) + list(self._probes), num_returns=1, timeout=left)
            if not ready:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"No task ended within {timeout} s.")
                continue
            ref = ready[0]
            if ref in self._probes:
                self._probe_answered(ref)
                continue
            call = self._in_flight.pop(ref)
            try:
                result = ray.get(ref)
            except RayTaskError as err:  # the runner raised: deterministic, do not retry
                self._idle.append(call.worker_index)
                return self._finish_all(call, _error_text(err))
            except RayActorError as err:  # the actor died or is unreachable
                if isinstance(err, ActorDiedError):
                    self._replace(call.worker_index)
                    self._idle.append(call.worker_index)
                elif isinstance(err, ActorUnavailableError):  # restarting: no work until it answers
                    self._probe(call.worker_index, time.monotonic())
                else:
                    self._idle.append(call.worker_index)
                failed = self._retry_or_fail(call, err)
                if failed is not None:
                    return failed
                continue
            except Exception as err:  # worker crash, object lost...: a system failure, retry
                self._idle.append(call.worker_index)
                failed = self._retry_or_fail(call, err)
                if failed is not None:
                    return failed
                continue
            self._idle.append(call.worker_index)
            if not isinstance(call.unit, tuple):
                return FinishedTask(call.unit, result, None, call.attempts, call.worker_index)
            by_id = {o.task_id: o for o in result}
            for task in call.unit:  # one outcome per task of the group
                o = by_id.get(task.task_id)
                if o is None:
                    self._ready.append(FinishedTask(task, None, "the group returned no outcome for this task", call.attempts, call.worker_index))
                else:
                    self._ready.append(FinishedTask(task, o.result, o.error, call.attempts, call.worker_index))
            return self._ready.popleft()

    def _retry_or_fail(self, call: _Call, err: BaseException) -> FinishedTask | None:
        """After a system failure: requeue the task (first in line), or give it up once its attempts are spent."""
        if call.attempts >= self._max_attempts:
            return self._finish_all(call, _error_text(err))
        self._resubmitted += 1
        self._queue.appendleft((call.unit, call.attempts))
        return None

    def _replace(self, index: int) -> None:
        import ray

        try:
            ray.kill(self._workers[index], no_restart=True)
        except Exception:  # already gone
            pass
        self._workers[index] = self._make_worker(index)
        self._replaced += 1

    # ---- bookkeeping ------------------------------------------------------------------------
    @property
    def workers(self) -> tuple[Any, ...]:
        """The current actor handles, by slot."""
        return tuple(self._workers)

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def n_replaced(self) -> int:
        """Actors replaced after dying for good."""
        return self._replaced

    @property
    def n_resubmitted(self) -> int:
        """Task calls resubmitted after an actor death the actor's own retries did not absorb."""
        return self._resubmitted

    def pending(self) -> int:
        """Tasks queued, running, or finished in a group and not yet returned."""
        size = lambda unit: len(unit) if isinstance(unit, tuple) else 1  # noqa: E731
        return sum(size(u) for u, _ in self._queue) + sum(len(c.tasks) for c in self._in_flight.values()) + len(self._ready)

    def shutdown(self) -> None:
        """Kill every actor (queued tasks are dropped, running ones abandoned)."""
        import ray

        self._queue.clear()
        self._ready.clear()
        self._in_flight.clear()
        self._probes.clear()
        for w in self._workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:
                pass
        self._idle.clear()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_text(err: BaseException) -> str:
    text = _ANSI.sub("", str(err))
    if not text:
        text = "".join(traceback.format_exception_only(type(err), err)).strip()
    return f"{type(err).__name__}: {text}"
