#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's packages when missing (tests run both for real).
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-prometheus: run as root, or: sudo apt-get install prometheus" >&2
  exit 1
fi
echo "install-prometheus: apt-get install prometheus"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a server of its own where there is an init system; the tests start theirs.
(command -v service >/dev/null && service prometheus stop >/dev/null 2>&1) || true
promtool --version | head -1
