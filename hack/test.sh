#!/usr/bin/env bash
# The test command (README and .ci/run): installs what the tests need, then lint, types and tests.
# Extra arguments go to pytest, e.g. `hack/test.sh -k emulator`.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/venv.sh
hack/install-tools.sh
hack/install-system-tools.sh
. .venv/bin/activate
export PATH="$PWD/.bin:$PATH"

echo "== ruff"; ruff check controller tests bench; ruff format --check controller tests bench
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
