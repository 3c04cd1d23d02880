"""Per shipped artifact, family and level: held-out raw and calibrated coverage with their 95%
across-dataset intervals, and whether the evidence test applies the correction there.

    python bench/evidence_table.py [--json out.json] > table.md

Reads each registry artifact's ``provenance["validation"]`` (written by ``pytyche-sweep validate
--write``) and :func:`pytyche.calibrate.evidence_of`. The "served" column is what a posterior now
gets at that level: the calibrated coverage where the correction is applied, the raw one where it
is not. It is chosen on the same held-out datasets it is reported on, so it is an optimistic
summary; an independent check needs a second held-out template per regime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytyche.calibrate import Calibration, evidence_of, registry_names  # noqa: E402


def rows() -> list[dict]:
    out = []
    for name in registry_names():
        corr = Calibration.from_sweep(name).correction
        val = corr.provenance.get("validation")
        if not val:
            out.append({"artifact": name, "family": None, "validated": False})
            continue
        ev = {(r.family, r.nominal): r for r in evidence_of(corr.provenance).rows}
        for row in val["levels"]:
            e = ev.get((row["family"], float(row["nominal"])))
            raw, cal = row["raw"], row["calibrated"]
            out.append({
                "artifact": name, "templates": val.get("templates"), "n_datasets": raw.get("n_datasets"),
                "family": row["family"], "nominal": row["nominal"],
                "raw": raw["mean"], "raw_ci": raw.get("ci"), "calibrated": cal["mean"], "calibrated_ci": cal.get("ci"),
                "applied": bool(e and e.applied), "reason": e.reason if e else "not tested",
                "served": cal["mean"] if e and e.applied else raw["mean"],
            })
    return out


def _ci(v: float, ci) -> str:
    return f"{v:.3f}" if not ci else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(table: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["artifact"] for r in table):
        mine = [r for r in table if r["artifact"] == name]
        if mine[0]["family"] is None:
            lines += [f"**{name}**: no held-out validation (auto never picks it).", ""]
            continue
        lines += [f"**{name}** (held out: {', '.join(mine[0]['templates'])}; {mine[0]['n_datasets']} datasets)", "",
                  "| family | level | raw [95% CI] | calibrated [95% CI] | applied | served |", "|---|---|---|---|---|---|"]
        for r in mine:
            if r["nominal"] not in (0.8, 0.9):
                continue
            lines.append(f"| {r['family']} | {r['nominal']:.0%} | {_ci(r['raw'], r['raw_ci'])} | "
                         f"{_ci(r['calibrated'], r['calibrated_ci'])} | {'yes' if r['applied'] else 'no'} | {r['served']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    table = rows()
    print(markdown(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
