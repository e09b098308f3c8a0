#!/usr/bin/env bash
# Installs what the tests run for real from Debian's packages, when missing: Prometheus and promtool
# (the alert rules and the end-to-end alert test), strace and iproute2 (the no-network test runs the
# stack in a network namespace of its own and traces every connect; without them it would skip).
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v strace >/dev/null \
  && command -v ip >/dev/null && command -v unshare >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-system-tools: run as root, or: sudo apt-get install prometheus strace iproute2 util-linux" >&2
  exit 1
fi
echo "install-system-tools: apt-get install prometheus strace iproute2 util-linux"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus strace iproute2 util-linux >/dev/null
# The package may start a server of its own where there is an init system; the tests start theirs.
(command -v service >/dev/null && service prometheus stop >/dev/null 2>&1) || true
promtool --version | head -1
