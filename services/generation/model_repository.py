"""Which model versions are loaded: scan the repository, verify, load, warm up, look up.

Reads ``<root>/<name>/<version>/`` folders written by the exporter (see
``latentforge.manifest``; manifests of format 1 and 2). Every complete version is loaded after its sha256 check and a
warm-up run; a version that fails is logged, counted and skipped. ``refresh()`` runs again
while serving to pick up new versions; the table of loaded versions is swapped whole, so a
request in flight keeps the model object it resolved, and a version whose folder vanished is
unloaded (marked ``retired``) without failing the requests that already hold it.

A version is refused (logged, counted in ``latentforge_model_load_failures_total``) when its
manifest has a format version this build does not read or is inconsistent, when its folder, its
model folder or its manifest is a symbolic link or resolves outside the repository, when a
listed file is a link, missing or fails sha256, when ONNX Runtime cannot load it, when a graph's
inputs or outputs disagree with the manifest's signature of it, or when a graph keeps tensor
data in external files (not covered by the manifest's sha256; the exporter never writes them).
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from latentforge.manifest import MANIFEST_NAME, NAME_PATTERN, Manifest, ManifestError, list_versions, verify_files
from services.errors import NotFound, Unavailable
from latentforge.runtime import ModelRuntime, OrtSettings
from services.generation.metrics import Metrics
from services.rpc.logs import event, get_logger

log = get_logger("model_repository")


class ModelRepository:
    """The loaded versions of every model under ``root``."""

    def __init__(self, root: Path, metrics: Metrics, settings: OrtSettings) -> None:
        self.root = Path(root)
        self.metrics = metrics
        self.settings = settings
        self._models: dict[str, dict[int, ModelRuntime]] = {}
        self._failed: set[tuple[str, int]] = set()
        self._refresh_lock = threading.Lock()

    def refresh(self) -> list[ModelRuntime]:
        """Load versions that appeared, drop versions whose folder vanished; blocking.

        Returns the newly loaded models. A version that failed is not retried while its folder
        stays (folders are immutable by contract); it is tried again if its folder disappears
        and comes back, or after a restart.
        """
        with self._refresh_lock:
            current = {name: dict(versions) for name, versions in self._models.items()}
            seen: set[tuple[str, int]] = set()
            added: list[ModelRuntime] = []
            if self.root.is_dir():
                for model_dir in sorted(self.root.iterdir()):
                    if not model_dir.is_dir() or not NAME_PATTERN.match(model_dir.name):
                        continue
                    for version in list_versions(model_dir):
                        key = (model_dir.name, version)
                        seen.add(key)
                        if version in current.get(model_dir.name, {}) or key in self._failed:
                            continue
                        model = self._load(model_dir / str(version), *key)
                        if model is not None:
                            current.setdefault(model_dir.name, {})[version] = model
                            added.append(model)
            else:
                event(log, "model_repository_missing", level=logging.WARNING, root=str(self.root))
            for name in list(current):
                for version in list(current[name]):
                    if (name, version) not in seen:
                        # Requests that resolved it keep their reference and finish on it.
                        retired = current[name].pop(version)
                        retired.retired = True
                        self._remove_series(retired)
                        event(log, "model_unloaded", model=name, version=version)
                if not current[name]:
                    del current[name]
            self._failed &= seen  # a refused version whose folder went away is tried again if it returns
            self._models = current
            self.metrics.models_loaded.set(sum(len(v) for v in current.values()))
            return added

    def _remove_series(self, model: ModelRuntime) -> None:
        """Stop exporting an unloaded version: its info, queue and inference series."""
        name, v, m = model.name, str(model.version), self.metrics
        series = [(m.model_info, (name, v)), (m.queue_depth, (name, v)), (m.queue_wait, (name, v))]
        for graph in model.sessions:
            series += [(m.batch_size, (name, v, graph)), (m.inference_duration, (name, v, graph, model.provider))]
        with warnings.catch_warnings():
            # Under `serve --processes` (prometheus_client's multiprocess mode) the series stay in
            # the shared files until restart and the library warns on every removal, in a line
            # that is not one of the server's JSON log lines; that limit is documented instead.
            warnings.filterwarnings("ignore", "Removal of labels", UserWarning)
            for metric, labels in series:
                try:
                    metric.remove(*labels)
                except KeyError:  # never observed
                    pass

    def _load(self, version_dir: Path, name: str, version: int) -> ModelRuntime | None:
        try:
            model = load_version(version_dir, self.settings, root=self.root, name=name, version=version)
        except Exception as exc:  # a broken version must not stop the others from serving
            self._failed.add((name, version))
            self.metrics.model_load_failures.labels(name).inc()
            event(log, "model_load_failed", level=logging.ERROR, model=name, version=version,
                  error=f"{type(exc).__name__}: {exc}"[:500])
            return None
        self.metrics.model_info.labels(name, str(version)).info(
            {"provider": model.provider, "kind": model.manifest.kind}
        )
        log_loaded(model)
        return model

    def all(self) -> list[ModelRuntime]:
        """Every loaded version, by name then version."""
        snapshot = self._models
        return [snapshot[n][v] for n in sorted(snapshot) for v in sorted(snapshot[n])]

    def latest_version(self, name: str) -> int | None:
        versions = self._models.get(name)
        return max(versions) if versions else None

    def __len__(self) -> int:
        return sum(len(v) for v in self._models.values())

    def resolve(self, name: str, version: int | None = None) -> ModelRuntime:
        """The model for a request: the pinned version or the newest one.

        Raises Unavailable when nothing is loaded, NotFound for an unknown name or version.
        """
        snapshot = self._models
        if not snapshot:
            raise Unavailable("no model is loaded yet; retry shortly (see grpc.health.v1 for readiness)")
        if not name:
            raise NotFound(f"model name is required; loaded models: {', '.join(sorted(snapshot))}")
        versions = snapshot.get(name)
        if not versions:
            raise NotFound(f"unknown model {name!r}; loaded models: {', '.join(sorted(snapshot))}")
        if not version:
            return versions[max(versions)]
        model = versions.get(version)
        if model is None:
            raise NotFound(f"model {name!r} has no version {version}; loaded versions: {sorted(versions)}")
        return model


def load_version(version_dir: Path, settings: OrtSettings, root: Path | None = None, name: str | None = None,
                 version: int | None = None) -> ModelRuntime:
    """Load and warm up one version folder with every check the server makes; raises on refusal.

    ``root`` is the repository root (default: two levels up), ``name``/``version`` what the folder
    path says (default: its parent's name and its own); the manifest must agree with them.
    """
    version_dir = Path(version_dir)
    root = version_dir.parent.parent if root is None else Path(root)
    name = version_dir.parent.name if name is None else name
    if version is None:
        try:
            version = int(version_dir.name)
        except ValueError:
            raise ManifestError(f"{version_dir} is not a version folder (<name>/<integer version>)") from None
    _check_inside(root, version_dir)
    manifest = Manifest.read(version_dir)
    if manifest.name != name or manifest.version != version:
        raise ManifestError(f"manifest says {manifest.name} v{manifest.version} but sits in {name}/{version}")
    verify_files(version_dir, manifest)  # every file, variants included
    _refuse_external_data(version_dir, manifest)
    model = ModelRuntime(manifest, version_dir, settings)
    model.warm_up()
    return model


def _check_inside(root: Path, version_dir: Path) -> None:
    """Refuse a version reached through a symbolic link or lying outside the repository."""
    for path in (version_dir.parent, version_dir, version_dir / MANIFEST_NAME):
        if path.is_symlink():
            raise ManifestError(f"{path.relative_to(root)} is a symbolic link; a model repository "
                                "holds real folders and files only")
    if not version_dir.resolve().is_relative_to(root.resolve()):
        raise ManifestError(f"{version_dir} resolves outside the model repository {root}")


# Where an ONNX ModelProto can hold a TensorProto (field numbers of onnx/onnx-ml.proto), by the
# message that holds them: just enough of the schema to find every tensor, without the onnx
# package (the serving install does not carry it).
_MODEL, _TRAINING, _GRAPH, _NODE, _ATTRIBUTE, _SPARSE, _FUNCTION, _TENSOR = range(8)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},  # graph, training_info, functions
    _TRAINING: {1: _GRAPH, 2: _GRAPH},  # initialization, algorithm
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},  # attribute
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # values, indices
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},  # node, attribute_proto
    _TENSOR: {},
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 13, 14, 1
_MAX_NESTING = 64


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or malformed protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def uses_external_data(data: bytes) -> bool:
    """Whether a serialized ONNX model keeps any tensor's data in another file
    (``TensorProto.data_location = EXTERNAL`` or ``external_data`` entries), subgraphs and
    functions included. Raises ValueError when the bytes are not a well-formed protobuf."""
    stack = [(0, len(data), _MODEL, 0)]
    while stack:
        pos, end, kind, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise ValueError(f"ONNX graphs nested deeper than {_MAX_NESTING} levels")
        children = _CHILDREN[kind]
        while pos < end:
            key, pos = _varint(data, pos, end)
            field_number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = _varint(data, pos, end)
                if kind == _TENSOR and field_number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
                    return True
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(data, pos, end)
                if pos + size > end:
                    raise ValueError("truncated protobuf field")
                if kind == _TENSOR and field_number == _TENSOR_EXTERNAL_DATA:
                    return True
                child = children.get(field_number)
                if child is not None:
                    stack.append((pos, pos + size, child, depth + 1))
                pos += size
            else:
                raise ValueError(f"unexpected protobuf wire type {wire}")
            if pos > end:
                raise ValueError("truncated protobuf field")
    return False


def _refuse_external_data(version_dir: Path, manifest: Manifest) -> None:
    """Refuse graphs whose tensors live in other files: those files escape the sha256 check, and
    their paths could point outside the folder (recent ONNX Runtime refuses that itself; the
    loader does not rely on it)."""
    graph_files = set(manifest.graphs.values())
    for roles in manifest.variants.values():
        graph_files.update(roles.values())
    for fname in sorted(graph_files):
        try:
            external = uses_external_data((version_dir / fname).read_bytes())
        except ValueError as exc:
            raise ManifestError(f"{fname} in {version_dir} is not a valid ONNX file: {exc}") from None
        if external:
            raise ManifestError(f"{fname} in {version_dir} keeps tensor data in external files, which the "
                                "loader refuses; export the graph with its weights inside the .onnx file")


def log_loaded(model: ModelRuntime) -> None:
    """The one log line that says which provider and files run a model."""
    event(log, "model_loaded", model=model.name, version=model.version, kind=model.manifest.kind,
          tasks=sorted(model.manifest.tasks), provider=model.provider, graphs=sorted(model.sessions), files=model.files,
          variant=model.variant or "plain", intra_op_threads=model.settings.intra_op_threads,
          io_binding=model.io_binding)
