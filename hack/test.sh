#!/usr/bin/env bash
# The test command (README and .ci/run): installs what the tests need, then lint, types and tests.
#
#   hack/test.sh                 everything (what CI runs): installs kubectl, helm, Prometheus, strace
#                                when missing, then every test
#   hack/test.sh --quick         lint, types and the tests marked neither e2e nor slow (under 2 minutes);
#                                installs nothing: a test whose tool is missing skips, naming it
#
# Other arguments go to pytest, e.g. `hack/test.sh -k emulator` or `hack/test.sh --quick -k rule`.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
if [ "${1:-}" = --quick ]; then
  quick=true
  shift
fi

hack/venv.sh
if ! $quick; then
  hack/install-tools.sh
  hack/install-system-tools.sh
fi
. .venv/bin/activate
export PATH="$PWD/.bin:$PATH"

echo "== ruff"; ruff check controller tests bench; ruff format --check controller tests bench
echo "== mypy"; mypy
echo "== pytest"
if $quick; then
  python -m pytest -m "not e2e and not slow" "$@"
else
  python -m pytest "$@"
fi
