# syntax=docker/dockerfile:1
# Trainer image: torch (pinned by constraints.txt), the trainer, the exporter and the built-in
# mnist5k data set. The entrypoint runs `latentforge train` (under torchrun when more than one
# process is asked for) and can export the run into a model repository afterwards; see
# deploy/docker/trainer-entrypoint.sh for its environment variables.
# Build from the repository root:
#   docker build -f deploy/docker/trainer.Dockerfile -t latentforge-trainer:0.1.0 .
# Train with 2 processes on one machine and export into ./models:
#   docker run --rm --user "$(id -u):$(id -g)" -e NPROC_PER_NODE=2 -e EXPORT_NAME=mnist-dcgan \
#     -v "$PWD/runs:/runs" -v "$PWD/models:/models" latentforge-trainer:0.1.0 \
#     --model dcgan --data mnist5k --steps 3000 --out /runs/mnist-dcgan
# torch from the default index is the CUDA build (it also runs on CPU, and uses NCCL on GPUs);
# for a smaller CPU-only image add --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index>.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build ---
FROM ${PYTHON_IMAGE} AS build
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY latentforge/ latentforge/
COPY trainer/ trainer/
COPY exporter/ exporter/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt ".[train,datasets,strokes]"

# --- runtime ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 latentforge \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/latentforge \
        --shell /usr/sbin/nologin latentforge \
 && mkdir -p /runs /models \
 && chown 10001:10001 /runs /models
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/trainer-entrypoint.sh /usr/local/bin/latentforge-train
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EXPORT_REPO=/models
WORKDIR /runs
VOLUME ["/runs", "/models"]
# torchrun's rendezvous port (multi-node jobs).
EXPOSE 29500
USER 10001:10001
ENTRYPOINT ["latentforge-train"]
CMD ["--model", "dcgan", "--data", "mnist5k", "--steps", "3000", "--out", "/runs/mnist-dcgan"]
