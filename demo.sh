#!/usr/bin/env bash
# Install pytyche into .venv (created if missing) and run the demo: a small sim-mode sequential
# experiment, then a small local Ray sweep logged to MLflow. Outputs go to ./demo_output/.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 MPLBACKEND=Agg
exec .venv/bin/python experiments/demo.py "$@"
