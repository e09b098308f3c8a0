#!/usr/bin/env bash
# The main job, on a fresh machine: installs the project and kubectl/helm, then runs `blocklearn dev`
# (local Kubernetes API + controller + index, no cluster). Arguments go to `blocklearn dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/venv.sh
hack/install-tools.sh
export PATH="$PWD/.bin:$PWD/.venv/bin:$PATH"
exec blocklearn dev "$@"
