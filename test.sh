#!/usr/bin/env bash
# Install pytyche with its test dependencies into .venv (created if missing) and run the test suite.
# Usage: bash test.sh [pytest args...]     e.g. bash test.sh -m slow   (the slow statistical checks)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
venv_install ".[test]"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
