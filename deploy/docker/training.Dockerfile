# syntax=docker/dockerfile:1
# Training service image: the TrainingService (`latentforge serve-training`) with what its jobs
# run: torch (pinned by constraints.txt), the trainer, the exporter and the built-in mnist5k
# set. Each job is a child process of the service in this container; finished jobs publish into
# the model repository at /models, which the serving containers read.
# Build from the repository root:
#   docker build -f deploy/docker/training.Dockerfile -t latentforge-training:0.1.0 .
# Run with a data folder (job store, uploaded data sets, run folders) and the model repository:
#   docker run --rm -p 50052:50052 -p 8080:8080 -v "$PWD/training-data:/data" -v "$PWD/models:/models" \
#     latentforge-training:0.1.0
# torch from the default index is the CUDA build (it also runs on CPU); for a smaller CPU-only
# image add --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index>.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build ---
FROM ${PYTHON_IMAGE} AS build
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY latentforge/ latentforge/
COPY services/ services/
COPY trainer/ trainer/
COPY exporter/ exporter/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt ".[train,serve,datasets,strokes]"

# --- runtime ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 latentforge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin latentforge \
 && mkdir -p /data /models \
 && chown 10001:10001 /data /models
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /opt/latentforge/healthcheck.py
# Settings are LATENTFORGE_* variables (services/training/config.py). The root filesystem may
# be read-only: HOME and the caches of the jobs' libraries point at /tmp. HTTP/JSON (docs/http.md)
# is on, on 8080: LATENTFORGE_HTTP_PORT=none turns it off.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor \
    LATENTFORGE_DATA_DIR=/data \
    LATENTFORGE_MODELS=/models \
    LATENTFORGE_HOST=0.0.0.0 \
    LATENTFORGE_PORT=50052 \
    LATENTFORGE_HTTP_HOST=0.0.0.0 \
    LATENTFORGE_HTTP_PORT=8080 \
    LATENTFORGE_METRICS_HOST=0.0.0.0 \
    LATENTFORGE_METRICS_PORT=9090
VOLUME ["/data", "/models"]
# gRPC (TrainingService, grpc.health.v1, reflection), HTTP/JSON (/v1/jobs, /v1/datasets, /healthz,
# /readyz) and Prometheus /metrics.
EXPOSE 50052 8080 9090
USER 10001:10001
# Healthy once the service has taken up the jobs its previous process left (health SERVING).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/latentforge/healthcheck.py"]
ENTRYPOINT ["latentforge"]
CMD ["serve-training"]
