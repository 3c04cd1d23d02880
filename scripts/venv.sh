# Sourced by demo.sh and test.sh (from the repository root): the project's virtual environment.
#
# venv_install TARGET: create .venv if missing (with $PYTHON, default python3), install TARGET
# into it editable (".", or ".[test]" with the test dependencies), and export the environment
# every run wants (Ray without auth or usage stats, headless matplotlib).
venv_install() {
  local py=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e "$1"
  export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 MPLBACKEND=Agg
}
