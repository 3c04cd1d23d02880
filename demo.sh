#!/usr/bin/env bash
# Install pytyche into .venv (created if missing) and run the demo: a small sim-mode sequential
# experiment, then a small local Ray sweep logged to MLflow. Outputs go to ./demo_output/.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
venv_install .
exec .venv/bin/python experiments/demo.py "$@"
