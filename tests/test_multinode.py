"""A sweep on a multi-node Ray cluster survives losing a worker node (the laptop stand-in for
``ray up cluster.yaml``).

``ray.cluster_utils.Cluster`` starts a head node (no GPU, so no actor lands there) and two worker
nodes with fake GPUs. ``pytyche-sweep run --address <head>`` runs a planted-coverage sweep
against it in a separate driver process, as on a real cluster; once some tasks have finished,
the worker node hosting an actor is removed. Its actor dies with it, Ray restarts it on the
surviving node (which keeps a free GPU and CPU for exactly that) or the pool replaces it, the
lost task runs again, and the sweep must end with every task's rows exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sweeps.shards import finished_ids, read_records
from sweeps.spec import parse_spec

# three Ray nodes and a driver process: about a minute on a 2-core machine, so it is a slow test;
# test_robustness.py::test_restarting_actor_gets_no_task_until_it_answers covers the pool's part
# (an actor Ray is restarting) on one node in the default run
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]

N_TASKS = 10
N_ROUNDS = 2


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    # room for both actors on either node, so losing one node leaves a place for its actor
    workers = [c.add_node(num_cpus=2, num_gpus=2, resources={f"worker{i}": 1}) for i in range(2)]
    c.wait_for_nodes()
    yield c, workers
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _actor_nodes(address: str) -> set[str]:
    """Node ids of the live SweepWorker actors (this test process joins as a second driver)."""
    import ray
    from ray._private.state import state  # the GCS actor table (ray.util.state needs a dashboard)

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    table = state.actor_table(None)
    return {
        a["Address"]["NodeID"] for a in table.values()
        if a.get("State") == "ALIVE" and "SweepWorker" in a.get("ActorClassName", "")
    }


def test_sweep_survives_losing_a_worker_node(cluster, tmp_path):
    c, workers = cluster
    out = tmp_path / "sweep"
    spec = parse_spec(
        {
            "name": "multinode",
            "templates": [{"name": "synthetic", "params": {"sleep_s": 1.0}}],
            "replications": N_TASKS,
            "schedule": {"kind": "fixed", "args": {"per_round": 100, "n_rounds": N_ROUNDS}},
            "levels": [0.5, 0.9],
            "families": ["cate"],
            "actors": {"count": 2, "num_gpus": 1, "num_cpus": 1, "max_restarts": 2, "max_task_retries": 1, "max_attempts": 3},
            "output_dir": str(out),
        }
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    cmd = [sys.executable, "-m", "sweeps.cli", "run", str(spec_file), "--address", c.address,
           "--runner", "sweeps.synthetic:run_synthetic_task", "--no-tracking", "--no-progress"]
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    removed = None
    try:
        deadline = time.time() + 240
        while len(finished_ids(out)) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None and len(finished_ids(out)) < N_TASKS, "the node must go mid-sweep"
        hosting = _actor_nodes(c.address)
        removed = next(w for w in workers if w.node_id in hosting)
        c.remove_node(removed, allow_graceful=False)  # the node is lost, not drained
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "driver.log").read_text()
    assert removed is not None
    assert code == 0, text

    tasks = spec.tasks()
    assert finished_ids(out) == {t.task_id for t in tasks}
    frame = read_records(out)
    counts = frame.groupby(["task_id", "kind"]).size().unstack(fill_value=0)
    assert (counts["calibration"] == N_ROUNDS * 2).all() and (counts["truth"] == N_ROUNDS).all()
    assert (counts["timing"] == 1).all() and len(counts) == N_TASKS  # every task exactly once
    # the surviving node did the rest: the removed node's actor is gone
    assert _actor_nodes(c.address) <= {w.node_id for w in workers if w is not removed}
