# Slim, non-root image with blocklearn installed in a virtual environment; the Helm chart runs it
# twice per pod (`blocklearn controller` and `blocklearn index`). The base needs only Python 3.11
# with venv: `hack/image.sh` passes a Debian base made with debootstrap where the usual registry
# is not reachable.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# A virtual environment: the same commands on the slim Python image and on Debian's python3, whose
# system pip refuses to install (PEP 668); the runtime stage copies it whole, at the same path.
RUN python3 -m venv /opt/blocklearn
ENV PATH=/opt/blocklearn/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
# Only the core dependencies: kmock (the `dev` extra) stays out, and so do the modules only the local
# stack uses (the emulator, `blocklearn dev`, the end-to-end evaluation; tests/test_packaging.py).
RUN pip install --no-cache-dir . && pip uninstall --yes setuptools \
    && cd /opt/blocklearn/lib/python3.*/site-packages/blocklearn && rm -r emulator dev.py evaluation_e2e.py

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin blocklearn
COPY --from=build /opt/blocklearn /opt/blocklearn
# MALLOC_ARENA_MAX: one arena per worker thread fragments memory and lets it grow (bench/soak.py).
ENV PATH=/opt/blocklearn/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["blocklearn"]
CMD ["--help"]
