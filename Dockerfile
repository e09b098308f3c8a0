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
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# MALLOC_ARENA_MAX: one arena per worker thread fragments memory and lets it grow (bench/soak.py).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["blocklearn"]
CMD ["--help"]
