"""Result shards: Parquet files per finished task, written atomically.

Layout of a sweep's output directory::

    <out>/records/<task_id>.parquet     the task's CalibrationRecord rows (coverage)
    <out>/truth/<task_id>.parquet       its truth-comparison rows and one timing row
    <out>/failures/<task_id>.txt        the last error of a task that failed (removed on success)

Each file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a driver killed at any moment leaves either a whole file or none (temporary
files start with ``.`` and end in ``.tmp``; :func:`clean_temp` removes leftovers). The truth
shard is written first and the records shard last: the presence of
``records/<task_id>.parquet`` is what marks a task finished, and a rerun skips it.

``records/`` holds only coverage records (the :class:`~pytyche.contracts.CalibrationRecord`
fields plus the task's identity columns), so ``scripts/fit_sbc_correction.py --records
<out>/records`` and :meth:`~pytyche.calibrate.LayeredCalibrationCorrection.fit` read it as is.
Every row carries the task's identity columns (``sweep``, ``task_id``, ``cell_id``,
``cell_label``, ``template``, ``params``, ``bcf``, ``seed``, ``replication``, and ``draws``: the
JSON of the values drawn from the spec's DGP population, ``{}`` when none) and a ``kind``:

- ``calibration``: one coverage record (one quantity family at one nominal level in one round),
- ``truth``: one round's truth-comparison metrics (oracle gap, policy accuracy, CATE RMSE, RPVs),
- ``timing``: one row per task with its wall time, rounds and JAX compile count.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.spec import Task
    from sweeps.task import TaskResult

__all__ = [
    "RECORD_SCHEMA",
    "TRUTH_SCHEMA",
    "TRUTH_METRICS",
    "clean_temp",
    "failure_path",
    "finished_ids",
    "read_records",
    "records_dir",
    "shard_path",
    "truth_path",
    "shard_rows",
    "write_failure",
    "write_shard",
    "write_text",
]

#: the six truth-comparison metrics of one round (glossary: truth comparison)
TRUTH_METRICS = ("cate_rmse", "policy_accuracy", "oracle_gap_rpv", "rpv_policy", "rpv_uniform", "rpv_oracle")

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


def records_dir(out: str | os.PathLike[str]) -> Path:
    return Path(out) / "records"


def shard_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return records_dir(out) / f"{task_id}.parquet"


def truth_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "truth" / f"{task_id}.parquet"


def failure_path(out: str | os.PathLike[str], task_id: str) -> Path:
    return Path(out) / "failures" / f"{task_id}.txt"


def finished_ids(out: str | os.PathLike[str]) -> set[str]:
    """Ids of the tasks whose shard exists (the tasks a rerun skips)."""
    d = records_dir(out)
    if not d.is_dir():
        return set()
    return {p.name[: -len(".parquet")] for p in d.iterdir() if p.name.endswith(".parquet") and not p.name.startswith(".")}


def clean_temp(out: str | os.PathLike[str]) -> int:
    """Remove temporary files a killed writer left behind; return how many were removed."""
    n = 0
    for d in (records_dir(out), Path(out) / "truth", Path(out) / "failures", Path(out)):
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_shard(out: str | os.PathLike[str], task: "Task", result: "TaskResult") -> Path:
    """Write a finished task's shards atomically (truth first, records last: the finish
    marker) and clear its failure note; return the records shard's path."""
    if result.task_id != task.task_id:
        raise ValueError(f"The 'result' parameter of write_shard belongs to task {result.task_id!r}, not {task.task_id!r}.")
    rows = shard_rows(task, result)
    cal = [r for r in rows if r["kind"] == "calibration"]
    other = [r for r in rows if r["kind"] != "calibration"]
    truth_table = _table(other, TRUTH_SCHEMA)
    _atomic_write(truth_path(out, task.task_id), lambda tmp: pq.write_table(truth_table, tmp))
    records_table = _table(cal, RECORD_SCHEMA)
    path = _atomic_write(shard_path(out, task.task_id), lambda tmp: pq.write_table(records_table, tmp))
    failure_path(out, task.task_id).unlink(missing_ok=True)
    return path


def write_failure(out: str | os.PathLike[str], task: "Task", error: str) -> Path:
    """Record a task's last error (text) next to the shards."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"task {task.task_id} ({task.cell_label}, seed {task.seed})\n{error}\n")

    return _atomic_write(failure_path(out, task.task_id), write)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a small text file atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return _atomic_write(Path(path), write)


def _read(paths: Sequence[Path], schema: pa.Schema) -> "pd.DataFrame":
    tables = [pq.read_table(p) for p in paths if p.is_file()]
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
        (truth shards); default all.

    Shards are read one by one and concatenated with type promotion, so a column that is all
    null in some shards still concatenates.
    """
    import pandas as pd

    done = finished_ids(out)
    ids = sorted(done if task_ids is None else set(task_ids) & done)
    kinds = {"calibration", "truth", "timing"} if kinds is None else set(kinds)
    frames = []
    if "calibration" in kinds:
        frames.append(_read([shard_path(out, i) for i in ids], RECORD_SCHEMA))
    if kinds & {"truth", "timing"}:
        t = _read([truth_path(out, i) for i in ids], TRUTH_SCHEMA)
        frames.append(t[t["kind"].isin(kinds)])
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
