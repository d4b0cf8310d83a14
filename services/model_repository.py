"""Which model versions are loaded: scan the repository, verify, load, warm up, look up.

Reads ``<root>/<name>/<version>/`` folders written by the exporter (see
``latentforge.manifest``). Every complete version is loaded after its sha256 check and a
warm-up run; a version that fails is logged, counted and skipped. ``refresh()`` runs again
while serving to pick up new versions; the table of loaded versions is swapped whole, so a
request in flight keeps the model object it resolved.
"""

from __future__ import annotations

import threading
from pathlib import Path

from latentforge.manifest import NAME_PATTERN, Manifest, ManifestError, list_versions, verify_files
from services.errors import NotFound, Unavailable
from services.inference import OnnxModel, OrtSettings, log_loaded
from services.logging_setup import event, get_logger
from services.metrics import Metrics

log = get_logger("model_repository")


class ModelRepository:
    """The loaded versions of every model under ``root``."""

    def __init__(self, root: Path, metrics: Metrics, settings: OrtSettings) -> None:
        self.root = Path(root)
        self.metrics = metrics
        self.settings = settings
        self._models: dict[str, dict[int, OnnxModel]] = {}
        self._failed: set[tuple[str, int]] = set()
        self._refresh_lock = threading.Lock()

    def refresh(self) -> list[OnnxModel]:
        """Load versions that appeared, drop versions whose folder vanished; blocking.

        Returns the newly loaded models. A version that failed once is not retried until
        the server restarts (its folder is immutable by contract).
        """
        with self._refresh_lock:
            current = {name: dict(versions) for name, versions in self._models.items()}
            seen: set[tuple[str, int]] = set()
            added: list[OnnxModel] = []
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
                event(log, "model_repository_missing", level=30, root=str(self.root))
            for name in list(current):
                for version in list(current[name]):
                    if (name, version) not in seen:
                        del current[name][version]
                        self.metrics.model_info.remove(name, str(version))
                        event(log, "model_unloaded", model=name, version=version)
                if not current[name]:
                    del current[name]
            self._models = current
            self.metrics.models_loaded.set(sum(len(v) for v in current.values()))
            return added

    def _load(self, version_dir: Path, name: str, version: int) -> OnnxModel | None:
        try:
            manifest = Manifest.read(version_dir)
            if manifest.name != name or manifest.version != version:
                raise ManifestError(
                    f"manifest says {manifest.name} v{manifest.version} but sits in {name}/{version}"
                )
            verify_files(version_dir, manifest)  # every file, variants included
            model = OnnxModel(manifest, version_dir, self.settings)
            model.warm_up()
        except Exception as exc:  # a broken version must not stop the others from serving
            self._failed.add((name, version))
            self.metrics.model_load_failures.labels(name).inc()
            event(log, "model_load_failed", level=40, model=name, version=version,
                  error=f"{type(exc).__name__}: {exc}"[:500])
            return None
        self.metrics.model_info.labels(name, str(version)).info(
            {"provider": model.provider, "kind": manifest.kind}
        )
        log_loaded(model)
        return model

    def all(self) -> list[OnnxModel]:
        """Every loaded version, by name then version."""
        snapshot = self._models
        return [snapshot[n][v] for n in sorted(snapshot) for v in sorted(snapshot[n])]

    def latest_version(self, name: str) -> int | None:
        versions = self._models.get(name)
        return max(versions) if versions else None

    def __len__(self) -> int:
        return sum(len(v) for v in self._models.values())

    def resolve(self, name: str, version: int | None = None) -> OnnxModel:
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
