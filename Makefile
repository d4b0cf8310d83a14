# latentforge: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= train,serve,datasets,strokes,dev

.PHONY: setup system-deps demo playground test soak proto bench-serving bench-peer-setup bench-train clean

# Python environment with every extra (torch pinned by constraints.txt).
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

# System packages the tests start for real: redis-server (cache tests), prometheus and
# promtool (alert-rule checks, scrape test). Debian/Ubuntu; needs root or sudo once.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Train a DCGAN, a VAE and a completion model on mnist5k and a sketch-rnn on kanji, export, serve,
# call them over gRPC, write the pictures.
demo: setup
	$(BIN)/python -m scripts.demo

# The demo's models (make demo) served with the HTTP/JSON surface and the playground at
# http://127.0.0.1:8080/, and the training API (uploads and jobs under out/demo/training);
# gRPC on 50051. Ctrl-C stops it.
playground: setup
	$(BIN)/latentforge serve --models out/demo/models --training --data-dir out/demo/training \
	  --http-port 8080 --playground --metrics-port none

# The whole test suite.
test: setup system-deps
	$(BIN)/python -m pytest -q

# The service's soak test at full length: 60 s of mixed load with Redis outages and model
# versions appearing and disappearing (the regular suite runs it for 8 s); prints its figures.
soak: setup system-deps
	LATENTFORGE_SOAK_S=60 $(BIN)/python -m pytest -q -s tests/test_service_soak.py

# Regenerate the gRPC code from proto/ (a test checks it is up to date).
proto: setup
	$(BIN)/python -m tools.protogen

# Service vs raw ONNX Runtime, and vs MLServer on the same files, on the demo models:
# docs/benchmarks/serving.{md,json,png}. It also runs scripts/bench_stylize.py, which writes
# docs/benchmarks/stylize.{md,json}: the served Stylize's latency at 256, 512 and 1024 px.
bench-serving: setup system-deps bench-peer-setup
	$(BIN)/python -m scripts.bench_serving

# MLServer, the serving benchmark's peer, in its own environment (never the project's).
PEER_VENV ?= .venv-peer
bench-peer-setup: $(PEER_VENV)/.installed
$(PEER_VENV)/.installed: scripts/peers/mlserver-requirements.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet -r scripts/peers/mlserver-requirements.txt
	touch $@

# Median training-step time per family: docs/benchmarks/training.md.
bench-train: setup
	$(BIN)/python -m scripts.bench_train --out docs/benchmarks/training.md

clean:
	rm -rf runs models out .pytest_cache
