#!/usr/bin/env bash
# GPU check: hurdle K=3 at 1M rows and continuous BCF at 1M (issue 16 item 5), batched fits and a
# lockstep sweep, batch_size 1 vs 8 on one GPU actor (issue 23 item 4), then, on the time left, a
# sweep with 1 vs 2 fractional actors; each section in its own process under its own time budget,
# all under 8 minutes on one H100. See bench/device_check.py.
#
#   bash bench/device_check.sh            # on the GPU machine: results in $OUT/device_check.json
#   bash bench/device_check.sh --smoke    # tiny sizes on CPU, checks the script end to end
#
# Python: $PYTHON, else .venv/bin/python, else python3. It needs pytyche's dependencies with a
# CUDA jaxlib (the device machine has no network: bring wheels in .whl/ and they are installed
# into /tmp/site first, see /work/.library/device/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 MPLBACKEND=Agg
LIMIT=470
for a in "$@"; do if [ "$a" = "--smoke" ]; then export JAX_PLATFORMS=cpu; LIMIT=3600; fi; done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
exec timeout "$LIMIT" "$PY" bench/device_check.py "$@"
