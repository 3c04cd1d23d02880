"""Result shards: Parquet files per finished task, written atomically.

Layout of a sweep's output directory::

    <out>/records/<task_id>.parquet     the task's CalibrationRecord rows (coverage)
    <out>/truth/<task_id>.parquet       its truth-comparison rows and one timing row
    <out>/decisions/<task_id>.parquet   its decision rows (SHIP / STOP / graduation / credible segment)
    <out>/failures/<task_id>.txt        the last error of a task that failed (removed on success)
    <out>/checksums/<task_id>.json      row counts and sha256 of the shards, taken at write time
    <out>/corrupt/<task_id>.*           shards that failed verification, moved aside (see below)

Each file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a driver killed at any moment leaves either a whole file or none (temporary
files start with ``.`` and end in ``.tmp``; :func:`clean_temp` removes leftovers). The truth
shard is written first, then the decisions shard, then the checksum file, and the records shard
last: the presence of ``records/<task_id>.parquet`` is what marks a task finished, and a rerun
skips it. Tasks finished before decision rows existed have no decisions shard (and no
``decisions`` entry in their checksum file); they read as having no decision rows.

A rename is atomic, but a disk can still lose or truncate a finished file (a full disk, a copy
interrupted between machines, a bad sync). :func:`verify_shards` checks every finished task's
shards against the row counts and sha256 recorded when they were written (shards written before
checksums existed are checked by reading them whole) and moves a bad task's files to
``corrupt/``, so the task counts as unfinished and a resume runs it again.

``records/`` holds only coverage records (the :class:`~pytyche.contracts.CalibrationRecord`
fields plus the task's identity columns), so ``scripts/fit_sbc_correction.py --records
<out>/records`` and :meth:`~pytyche.calibrate.LayeredCalibrationCorrection.fit` read it as is.
Every row carries the task's identity columns (``sweep``, ``task_id``, ``cell_id``,
``cell_label``, ``template``, ``params``, ``bcf``, ``seed``, ``replication``, and ``draws``: the
JSON of the values drawn from the spec's DGP population, ``{}`` when none) and a ``kind``:

- ``calibration``: one coverage record (one quantity family at one nominal level in one round),
- ``truth``: one round's truth-comparison metrics (oracle gap, policy accuracy, CATE RMSE, RPVs),
- ``timing``: one row per task with its wall time, rounds and JAX compile count,
- ``decision``: one claim of one round (SHIP for the population or a segment, STOP for harm or
  futility, a graduation candidate, a credible segment) for one arm, fired or not, with the truth
  it is judged against (:mod:`sweeps.decisions`; columns :data:`DECISION_SCHEMA`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pytyche._files import atomic_write, atomic_write_text, file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.spec import Task
    from sweeps.task import TaskResult

__all__ = [
    "DECISION_SCHEMA",
    "RECORD_SCHEMA",
    "TRUTH_SCHEMA",
    "TRUTH_METRICS",
    "checksum_path",
    "clean_temp",
    "decisions_path",
    "failure_path",
    "finished_ids",
    "read_records",
    "records_dir",
    "refused_path",
    "refused_tasks",
    "shard_path",
    "truth_path",
    "shard_rows",
    "verify_shards",
    "write_failure",
    "write_shard",
    "write_text",
]

logger = logging.getLogger(__name__)

#: the truth-comparison metrics of one round (docs: truth comparison); ``rpv_omniscient`` (the
#: latent-cluster oracle, reported only) is null when the truth carries no latent surface
TRUTH_METRICS = ("cate_rmse", "policy_accuracy", "oracle_gap_rpv", "rpv_policy", "rpv_uniform", "rpv_oracle", "rpv_omniscient")

_IDENTITY_SCHEMA = [
    ("sweep", pa.string()),
    ("task_id", pa.string()),
    ("cell_id", pa.string()),
    ("cell_label", pa.string()),
    ("template", pa.string()),
    ("params", pa.string()),
    ("bcf", pa.string()),
    ("seed", pa.int64()),
    ("replication", pa.int64()),
    ("kind", pa.string()),
    ("round_idx", pa.int64()),
]

#: columns of a records shard (extra columns a custom runner returns are kept too)
RECORD_SCHEMA = pa.schema(
    [
        *_IDENTITY_SCHEMA,
        ("family", pa.string()),
        ("nominal", pa.float64()),
        ("coverage", pa.float64()),
        ("n_targets", pa.int64()),
        ("mean_width", pa.float64()),
        ("metric", pa.string()),
        ("n_treatments", pa.int64()),
        ("pooling", pa.string()),
        ("sample_size", pa.int64()),
    ]
)

#: columns of a truth shard: truth-comparison rows and the timing row
TRUTH_SCHEMA = pa.schema(
    [
        *_IDENTITY_SCHEMA,
        ("sample_size", pa.int64()),
        *[(m, pa.float64()) for m in TRUTH_METRICS],
        ("seconds", pa.float64()),
        ("n_rounds", pa.int64()),
        ("compiles", pa.int64()),
        ("worker", pa.string()),
    ]
)


#: columns of a decisions shard (one row per claim, arm and segment per round; see
#: :mod:`sweeps.decisions`): posterior summary columns are null on ``credible_segment`` rows,
#: ``segment_*`` and ``stability_score`` null for the population, ``right`` null when the truth
#: cannot judge the claim
DECISION_SCHEMA = pa.schema(
    [
        *_IDENTITY_SCHEMA,
        ("sample_size", pa.int64()),
        ("decision", pa.string()),
        ("treatment", pa.string()),
        ("segment_id", pa.int64()),
        ("segment_rule", pa.string()),
        ("segment_share", pa.float64()),
        ("stability_score", pa.float64()),
        ("fired", pa.bool_()),
        ("right", pa.bool_()),
        ("rounds_sustained", pa.int64()),
        ("active", pa.bool_()),
        ("min_effect", pa.float64()),
        ("true_effect", pa.float64()),
        ("true_relative_effect", pa.float64()),
        ("true_control_mean", pa.float64()),
        ("p_positive", pa.float64()),
        ("p_better", pa.float64()),
        ("p_harmful", pa.float64()),
        ("expected_loss", pa.float64()),
        ("lift_mean", pa.float64()),
        ("lift_ci_lo", pa.float64()),
        ("lift_ci_hi", pa.float64()),
    ]
)


def records_dir(out: str | os.PathLike[str]) -> Path:
    return Path(out) / "records"


def shard_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return records_dir(out) / f"{task_id}.parquet"


def truth_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "truth" / f"{task_id}.parquet"


def decisions_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "decisions" / f"{task_id}.parquet"


def failure_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "failures" / f"{task_id}.txt"


def refused_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "refused" / f"{task_id}.txt"


def refused_tasks(out: str | os.PathLike[str], task_ids: Iterable[str] | None = None) -> dict[str, str]:
    """``task_id -> reason`` of the finished tasks (of ``task_ids``, default all) whose data the
    model refused (see :attr:`sweeps.task.TaskResult.refused`)."""
    d = Path(out) / "refused"
    if not d.is_dir():
        return {}
    keep = finished_ids(out) if task_ids is None else finished_ids(out) & set(task_ids)
    return {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(d.glob("*.txt")) if p.stem in keep}


def checksum_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "checksums" / f"{task_id}.json"


def finished_ids(out: str | os.PathLike[str]) -> set[str]:
    """Ids of the tasks whose shard exists (the tasks a rerun skips)."""
    d = records_dir(out)
    if not d.is_dir():
        return set()
    return {p.name[: -len(".parquet")] for p in d.iterdir() if p.name.endswith(".parquet") and not p.name.startswith(".")}


def clean_temp(out: str | os.PathLike[str]) -> int:
    """Remove temporary files a killed writer left behind; return how many were removed."""
    n = 0
    for d in (records_dir(out), Path(out) / "truth", Path(out) / "decisions", Path(out) / "failures", Path(out) / "checksums", Path(out)):
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                    p.unlink(missing_ok=True)
                    n += 1
    return n


def _identity(task: "Task") -> dict[str, Any]:
    from sweeps.spec import canonical_json

    return {
        "sweep": task.sweep,
        "task_id": task.task_id,
        "cell_id": task.cell_id,
        "cell_label": task.cell_label,
        "template": task.template,
        "params": canonical_json(task.params_dict),
        "bcf": canonical_json(task.bcf_dict),
        "seed": task.seed,
        "replication": task.replication,
        # the values drawn for this replication from the spec's DGP population ("{}" when none)
        "draws": canonical_json(task.draws),
    }


def shard_rows(task: "Task", result: "TaskResult") -> list[dict[str, Any]]:
    """The rows of a task's shard: the result's records stamped with the task's identity, plus
    one ``timing`` row."""
    ident = _identity(task)
    rows = []
    for rec in result.records:
        row = dict(rec)
        row.setdefault("kind", "calibration")
        row.update(ident)
        rows.append(row)
    rows.append(
        {
            **ident,
            "kind": "timing",
            "seconds": float(result.seconds),
            "n_rounds": int(result.n_rounds),
            "compiles": None if result.compiles is None else int(result.compiles),
            "worker": result.worker,
        }
    )
    return rows


def _table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    known = schema.names
    extra: list[str] = []
    for r in rows:
        for k in r:
            if k not in known and k not in extra:
                extra.append(k)
    columns = {name: [r.get(name) for r in rows] for name in known}
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    fields = list(schema)
    for name in extra:
        values = [r.get(name) for r in rows]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else json.dumps(v, default=str) for v in values], type=pa.string())
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_shard(out: str | os.PathLike[str], task: "Task", result: "TaskResult") -> Path:
    """Write a finished task's shards atomically (truth first, records last: the finish
    marker) and clear its failure note; return the records shard's path."""
    if result.task_id != task.task_id:
        raise ValueError(f"The 'result' parameter of write_shard belongs to task {result.task_id!r}, not {task.task_id!r}.")
    rows = shard_rows(task, result)
    cal = [r for r in rows if r["kind"] == "calibration"]
    dec = [r for r in rows if r["kind"] == "decision"]
    other = [r for r in rows if r["kind"] not in ("calibration", "decision")]
    tables = {"truth": _table(other, TRUTH_SCHEMA), "decisions": _table(dec, DECISION_SCHEMA), "records": _table(cal, RECORD_SCHEMA)}
    # serialise first, so the checksums describe exactly the bytes that are then written
    data = {kind: _parquet_bytes(table) for kind, table in tables.items()}
    atomic_write(truth_path(out, task.task_id), lambda tmp: Path(tmp).write_bytes(data["truth"]))
    atomic_write(decisions_path(out, task.task_id), lambda tmp: Path(tmp).write_bytes(data["decisions"]))
    sums = {kind: {"rows": tables[kind].num_rows, "sha256": hashlib.sha256(data[kind]).hexdigest()} for kind in tables}
    write_text(checksum_path(out, task.task_id), json.dumps(sums, sort_keys=True) + "\n")
    if result.refused is not None:
        write_text(refused_path(out, task.task_id), f"{result.refused}\n")
    else:
        refused_path(out, task.task_id).unlink(missing_ok=True)
    path = atomic_write(shard_path(out, task.task_id), lambda tmp: Path(tmp).write_bytes(data["records"]))
    failure_path(out, task.task_id).unlink(missing_ok=True)
    return path


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _shard_problem(out: str | os.PathLike[str], task_id: str) -> str | None:
    """Why a finished task's shards cannot be trusted, or ``None`` when they check out."""
    files = {"records": shard_path(out, task_id), "truth": truth_path(out, task_id)}
    if not files["truth"].is_file():
        return "its truth shard is missing"
    decisions = decisions_path(out, task_id)
    cpath = checksum_path(out, task_id)
    if cpath.is_file():
        try:
            sums = json.loads(cpath.read_text(encoding="utf-8"))
            if "decisions" in sums:  # written since decision rows exist
                files["decisions"] = decisions
            expected = {k: (int(sums[k]["rows"]), str(sums[k]["sha256"])) for k in files}
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"its checksum file {cpath.name} is unreadable ({type(err).__name__})"
        if "decisions" in files and not decisions.is_file():
            return "its decisions shard is missing"
        for kind, path in files.items():
            if file_sha256(path) != expected[kind][1]:
                return f"its {kind} shard {path.name} does not match the sha256 recorded when it was written ({path.stat().st_size} bytes now)"
        return None
    # written before checksums existed: the shards must at least read whole
    if decisions.is_file():
        files["decisions"] = decisions
    for kind, path in files.items():
        try:
            n = pq.read_table(path).num_rows
        except Exception as err:  # pyarrow raises several types for damaged files
            return f"its {kind} shard {path.name} is unreadable ({type(err).__name__}: {err})"
        if kind == "truth" and n < 1:
            return f"its truth shard {path.name} has no rows"
    return None


def verify_shards(out: str | os.PathLike[str], task_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Check finished tasks' shards; move bad ones to ``<out>/corrupt/`` so their tasks run again.

    Parameters
    ----------
    out
        The sweep's output directory.
    task_ids
        Check only these finished tasks (default: every finished task).

    Returns
    -------
    dict
        ``task_id -> reason`` for each task whose shards failed (now unfinished); each is also
        logged as a warning.
    """
    done = finished_ids(out)
    ids = sorted(done if task_ids is None else set(task_ids) & done)
    bad: dict[str, str] = {}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for tid in ids:
        problem = _shard_problem(out, tid)
        if problem is None:
            continue
        bad[tid] = problem
        aside = Path(out) / "corrupt"
        aside.mkdir(parents=True, exist_ok=True)
        # the records shard (the finish marker) first, so a crash here leaves the task unfinished
        for kind, path in (("records", shard_path(out, tid)), ("truth", truth_path(out, tid)),
                           ("decisions", decisions_path(out, tid)), ("checksums", checksum_path(out, tid))):
            if path.is_file():
                os.replace(path, aside / f"{tid}.{kind}.{stamp}{path.suffix}")
        logger.warning("task %s: %s; its shards were moved to %s and the task will run again", tid, problem, aside)
    return bad


def write_failure(out: str | os.PathLike[str], task: "Task", error: str) -> Path:
    """Record a task's last error (text) next to the shards."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"task {task.task_id} ({task.cell_label}, seed {task.seed})\n{error}\n")

    return atomic_write(failure_path(out, task.task_id), write)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a small text file atomically (:func:`pytyche._files.atomic_write_text`)."""
    return atomic_write_text(path, text)


def _read(paths: Sequence[Path], schema: pa.Schema) -> "pd.DataFrame":
    tables = []
    for p in paths:
        if not p.is_file():
            continue
        try:
            tables.append(pq.read_table(p))
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(
                f"The shard {str(p)!r} is damaged ({err}). Run `pytyche-sweep resume` on the sweep: it verifies "
                "every shard and runs the tasks whose shards are bad again."
            ) from None
    if not tables:
        return _table([], schema).to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def read_records(out: str | os.PathLike[str], task_ids: Iterable[str] | None = None, *, kinds: Iterable[str] | None = None) -> "pd.DataFrame":
    """Rows of a sweep's finished tasks (optionally only the given tasks') as one DataFrame.

    Parameters
    ----------
    out
        The sweep's output directory.
    task_ids
        Restrict to these tasks (default: every finished task).
    kinds
        Row kinds to return: ``"calibration"`` (records shards), ``"truth"``, ``"timing"``
        (truth shards), ``"decision"`` (decisions shards; none for tasks finished before decision
        rows existed); default all.

    Shards are read one by one and concatenated with type promotion, so a column that is all
    null in some shards still concatenates.
    """
    import pandas as pd

    done = finished_ids(out)
    ids = sorted(done if task_ids is None else set(task_ids) & done)
    kinds = {"calibration", "truth", "timing", "decision"} if kinds is None else set(kinds)
    frames = []
    if "calibration" in kinds:
        frames.append(_read([shard_path(out, i) for i in ids], RECORD_SCHEMA))
    if kinds & {"truth", "timing"}:
        t = _read([truth_path(out, i) for i in ids], TRUTH_SCHEMA)
        frames.append(t[t["kind"].isin(kinds)])
    if "decision" in kinds:
        frames.append(_read([decisions_path(out, i) for i in ids], DECISION_SCHEMA))
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
