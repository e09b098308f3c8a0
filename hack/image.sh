#!/usr/bin/env bash
# Builds the production image with podman from the Dockerfile, then (`smoke`) runs the image's own
# controller and index against a local emulator.
#
#   hack/image.sh [build|smoke|all]      (default: all)
#
# BASE_IMAGE picks the base (the Dockerfile's default is python:3.11-slim). Unset, the script makes a
# Debian base with debootstrap and imports it, for machines that reach Debian's archive but no image
# registry. IMAGE names the result (default localhost/blocklearn:dev). Needs root, podman and
# debootstrap (`apt-get install -y podman debootstrap`).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/blocklearn:dev}
DEBIAN_BASE=localhost/blocklearn-base:bookworm-slim

debian_base() {
  if podman image exists "$DEBIAN_BASE"; then return; fi
  local root
  root=$(mktemp -d)
  # minbase: dpkg, apt and the essential packages; python3-venv brings ensurepip for the build.
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" >&2
  # The base trusts what this machine trusts (a TLS-intercepting proxy's CA, if any), and pip uses
  # the system's bundle rather than its own: the build installs the wheels from PyPI through it.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
  fi
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
  # Slim, as Debian's own debian:bookworm-slim is (debuerreotype): no manuals, documentation or
  # translations (45 MB here), the licences kept; dpkg leaves them out of any later install too.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/linda/*' \
    >"$root/etc/dpkg/dpkg.cfg.d/slim"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,info,locale,groff,lintian,linda}/*
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$DEBIAN_BASE" >&2
  rm -rf "$root"
}

build() {
  local base=${BASE_IMAGE:-}
  if [[ -z $base ]]; then
    debian_base
    base=$DEBIAN_BASE
  fi
  local start=$SECONDS
  podman build --isolation chroot --build-arg "BASE_IMAGE=$base" -t "$IMAGE" .
  echo "image: built $IMAGE from $base in $((SECONDS - start)) s;" \
    "size $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"
}

smoke() {
  # The smoke run is a test: it needs the project's venv (hack/venv.sh) for the emulator on the host.
  BLOCKLEARN_IMAGE_TEST=1 BLOCKLEARN_IMAGE="$IMAGE" .venv/bin/python -m pytest -q -s tests/test_image.py
}

case ${1:-all} in
  build) build ;;
  smoke) smoke ;;
  all) build && smoke ;;
  *) echo "usage: $0 [build|smoke|all]" >&2; exit 2 ;;
esac
