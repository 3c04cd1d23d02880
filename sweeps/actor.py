"""``SweepWorker``: a long-lived Ray actor that runs sweep tasks one after another.

One process per actor, pinned to its GPU share, runs task after task, so the JAX programs
(the BCF's MCMC kernels) compiled by the first task stay in memory for the next ones at the
same padded shapes. :meth:`SweepWorker.compile_count` counts the process's XLA backend
compilations (a :mod:`jax.monitoring` listener), so a run shows the count staying flat after
the first task.

Create workers with :func:`create_worker`; it applies the sweep spec's actor layout::

    worker = create_worker(spec.actors)          # num_gpus, num_cpus, memory fraction, restarts
    ref = worker.run.remote(task)                # -> TaskResult
    ref = worker.run_batch.remote(tasks)         # -> [MemberOutcome], the tasks in lockstep

A spec's ``batch_size`` > 1 sends groups of tasks to :meth:`SweepWorker.run_batch`
(:mod:`sweeps.lockstep`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytyche._compilation import backend_compiles, install_compile_counter

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.lockstep import MemberOutcome
    from sweeps.spec import ActorSpec, Task
    from sweeps.task import TaskResult

__all__ = ["SweepWorker", "actor_options", "compile_count", "create_worker", "install_compile_counter"]

def compile_count() -> int:
    """XLA backend compilations (executables obtained) in this process since :func:`install_compile_counter`."""
    return backend_compiles()


def _pin_cpu_without_gpu() -> None:
    """Inside a Ray actor that was assigned no GPU, keep JAX on the CPU.

    Ray leaves ``CUDA_VISIBLE_DEVICES`` alone for zero-GPU workers, so on a GPU node JAX would
    otherwise grab a GPU Ray gave to another actor. Only possible before JAX is imported (it
    reads ``JAX_PLATFORMS`` once); an explicit ``JAX_PLATFORMS`` is respected.
    """
    import sys

    if "jax" in sys.modules or "JAX_PLATFORMS" in os.environ:
        return
    try:
        import ray

        if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
            return
        if not ray.get_gpu_ids():
            os.environ["JAX_PLATFORMS"] = "cpu"
    except Exception:  # pragma: no cover - outside Ray
        return


class SweepWorker:
    """Runs tasks in one process, keeping compiled JAX programs warm between them.

    Parameters
    ----------
    runner
        ``runner(task) -> TaskResult``; default :func:`sweeps.task.run_task` (whose groups
        :meth:`run_batch` runs in lockstep).

    Notes
    -----
    Ray creates the actor with ``ray.remote(SweepWorker).options(...)`` (see
    :func:`create_worker`); the class itself is plain Python and can be used in-process.
    """

    def __init__(self, runner: Callable[["Task"], "TaskResult"] | None = None) -> None:
        self._lockstep = runner is None
        if runner is None:
            from sweeps.task import run_task

            runner = run_task
        self._runner = runner
        self._tasks_done = 0
        self._started = time.time()
        _pin_cpu_without_gpu()
        install_compile_counter()

    def run(self, task: "Task") -> "TaskResult":
        """Run one task and return its result, stamped with the compile count and worker id."""
        before = compile_count()
        result = self._runner(task)
        self._tasks_done += 1
        return replace(result, compiles=compile_count() - before, worker=self.name())

    def run_batch(self, tasks: "list[Task]") -> "list[MemberOutcome]":
        """Run a group of tasks together and return one outcome per task, in order.

        With the default runner the group runs in lockstep, one batched fit per round
        (:func:`sweeps.lockstep.run_lockstep`); a custom runner runs the tasks one after another
        (:func:`sweeps.lockstep.run_group`). A task's error ends only that task. The group's
        compile count is stamped on its first result (0 on the others), so the counts still sum
        to the process's compilations.
        """
        from sweeps.lockstep import run_group, run_lockstep

        before = compile_count()
        outcomes = run_lockstep(tasks) if self._lockstep else run_group(tasks, self._runner)
        compiles = compile_count() - before
        self._tasks_done += len(tasks)
        out = []
        for o in outcomes:
            if o.result is not None:
                o = replace(o, result=replace(o.result, compiles=compiles, worker=self.name()))
                compiles = 0
            out.append(o)
        return out

    def compile_count(self) -> int:
        """XLA backend compilations in this worker's process so far."""
        return compile_count()

    def getenv(self, name: str) -> str | None:
        """An environment variable of the worker process."""
        return os.environ.get(name)

    def tasks_done(self) -> int:
        return self._tasks_done

    def name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def info(self) -> dict[str, Any]:
        """Process id, host, the GPUs Ray assigned and the tasks run so far."""
        gpu_ids: list[Any] = []
        try:
            import ray

            if ray.is_initialized():
                gpu_ids = list(ray.get_gpu_ids())
        except Exception:  # pragma: no cover - outside Ray
            gpu_ids = []
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "gpu_ids": gpu_ids,
            "tasks_done": self._tasks_done,
            "compiles": compile_count(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "xla_mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"),
            "uptime_s": time.time() - self._started,
        }


def actor_options(actors: "ActorSpec") -> dict[str, Any]:
    """Ray ``.options(...)`` for a worker of the given layout.

    With ``memory_fraction`` set, the actor's runtime environment sets
    ``XLA_PYTHON_CLIENT_MEM_FRACTION`` so actors sharing a GPU do not each preallocate 75% of it;
    ``env`` adds its variables. (A runtime environment costs a few seconds per actor start, so
    none is requested when there is no variable to set.)
    """
    opts: dict[str, Any] = {
        "num_gpus": actors.num_gpus,
        "num_cpus": actors.num_cpus,
        "max_restarts": actors.max_restarts,
        "max_task_retries": actors.max_task_retries,
    }
    env = actors.env_dict
    if actors.memory_fraction is not None:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{actors.memory_fraction:g}"
    if env:
        opts["runtime_env"] = {"env_vars": env}
    return opts


def create_worker(actors: "ActorSpec", runner: Callable[["Task"], "TaskResult"] | None = None, **overrides: Any) -> Any:
    """Start one :class:`SweepWorker` actor with the spec's layout; return its handle.

    Parameters
    ----------
    actors
        The spec's :class:`~sweeps.spec.ActorSpec`.
    runner
        Task runner shipped to the actor (must pickle); default :func:`sweeps.task.run_task`.
    **overrides
        Extra or replacement Ray actor options (``name``, ``scheduling_strategy``, ...).
    """
    import ray

    opts = {**actor_options(actors), **overrides}
    return ray.remote(SweepWorker).options(**opts).remote(runner)
