# syntax=docker/dockerfile:1
# Build and runtime use the same Python image (CPython 3.11, Debian 12), so the
# virtual environment built in the first stage runs unchanged in the second.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY function ./function
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir hatchling==1.33.0 \
 && /venv/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist . \
 && /venv/bin/pip install --no-cache-dir /dist/*.whl \
 && /venv/bin/pip uninstall --yes hatchling

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric, non-root user: Kubernetes can check runAsNonRoot without /etc/passwd.
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/venv/bin/function"]
