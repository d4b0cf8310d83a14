# syntax=docker/dockerfile:1
# Serving image (CPU): ONNX Runtime + gRPC, the `serve` extra only (no torch).
# Build from the repository root:
#   docker build -f deploy/docker/serve.Dockerfile -t latentforge-serve:0.1.0 .
# Run with a model repository mounted read-only at /models:
#   docker run --rm -p 50051:50051 -p 8080:8080 -p 9090:9090 -v "$PWD/models:/models:ro" latentforge-serve:0.1.0

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: install the package and its serving dependencies into a virtual environment ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what serving needs: the package metadata, the generated gRPC code and services/.
COPY pyproject.toml README.md constraints.txt ./
COPY latentforge/ latentforge/
COPY services/ services/
# The last line fails the build if torch got in by any route.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt ".[serve]" \
 && ! /opt/venv/bin/pip show torch >/dev/null 2>&1

# --- runtime: the virtual environment, the health probe and an unprivileged user ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 latentforge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin latentforge
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /opt/latentforge/healthcheck.py
# Settings are LATENTFORGE_* variables (services/generation/config.py), so `docker run -e` and a
# Kubernetes ConfigMap can change any of them; bind to all interfaces inside the container.
# HTTP/JSON (docs/http.md) is on, on 8080: LATENTFORGE_HTTP_PORT=none turns it off.
# ORT_DISABLE_TELEMETRY: ONNX Runtime's usage telemetry would try to store a device id under
# HOME (/nonexistent for this user), fail, and print a non-JSON warning into the JSON log;
# off, it writes nothing and sends nothing.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    LATENTFORGE_MODELS=/models \
    LATENTFORGE_HOST=0.0.0.0 \
    LATENTFORGE_PORT=50051 \
    LATENTFORGE_HTTP_HOST=0.0.0.0 \
    LATENTFORGE_HTTP_PORT=8080 \
    LATENTFORGE_METRICS_HOST=0.0.0.0 \
    LATENTFORGE_METRICS_PORT=9090
VOLUME ["/models"]
# gRPC (GenerationService, grpc.health.v1, reflection), HTTP/JSON (/v1/..., /healthz, /readyz)
# and Prometheus /metrics.
EXPOSE 50051 8080 9090
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Healthy once a model is loaded (grpc.health.v1 answers SERVING); loading takes a few seconds.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/latentforge/healthcheck.py"]
ENTRYPOINT ["latentforge"]
CMD ["serve"]
