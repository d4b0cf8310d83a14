# syntax=docker/dockerfile:1
# Serving image (NVIDIA GPU): the `gpu` extra, i.e. onnxruntime-gpu instead of onnxruntime, on a
# CUDA 12 + cuDNN 9 runtime base (what onnxruntime-gpu's CUDA execution provider loads).
# Build from the repository root:
#   docker build -f deploy/docker/serve-gpu.Dockerfile -t latentforge-serve-gpu:0.1.0 .
# Run on a host with the NVIDIA Container Toolkit:
#   docker run --rm --gpus all -p 50051:50051 -p 8080:8080 -p 9090:9090 -v "$PWD/models:/models:ro" latentforge-serve-gpu:0.1.0

ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
# onnxruntime-gpu built for CUDA 12.x and cuDNN 9.x; change together with CUDA_IMAGE.
ARG ORT_GPU_VERSION=1.22.0

# --- build ---
FROM ${CUDA_IMAGE} AS build
ARG ORT_GPU_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04's Python 3.12 (the service needs 3.11 or newer).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY latentforge/ latentforge/
COPY services/ services/
# Fail the build if torch got in, or the CPU onnxruntime (it would shadow the GPU build).
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt "onnxruntime-gpu==${ORT_GPU_VERSION}" ".[gpu]" \
 && ! /opt/venv/bin/pip show torch >/dev/null 2>&1 \
 && ! /opt/venv/bin/pip show onnxruntime >/dev/null 2>&1

# --- runtime ---
FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 latentforge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin latentforge
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /opt/latentforge/healthcheck.py
# CUDA first, CPU as the fallback for operators CUDA lacks. CUDA's kernel cache goes to /tmp
# (the root filesystem is read-only on Kubernetes). ONNX Runtime's telemetry is off, as in
# serve.Dockerfile: it writes nothing under HOME and no warning into the JSON log. HTTP/JSON on
# 8080, as in serve.Dockerfile.
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
    LATENTFORGE_METRICS_PORT=9090 \
    LATENTFORGE_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    CUDA_CACHE_PATH=/tmp/cuda-cache
VOLUME ["/models"]
EXPOSE 50051 8080 9090
USER 10001:10001
# A CUDA session takes longer to create and warm up than a CPU one: a longer start period.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/latentforge/healthcheck.py"]
ENTRYPOINT ["latentforge"]
CMD ["serve"]
