"""The model the quality meter scores, and the report it writes: one of each, whatever the task.

``open_scored(path, checkpoint)`` opens what ``latentforge evaluate`` is pointed at as a
``ScoredModel``: a trainer run folder (its newest checkpoint, or the one given) or a checkpoint
file, run with PyTorch through the family the checkpoint names; or an exported version folder, run
through ``latentforge.runtime.ModelRuntime`` with plain CPU sessions of the files as exported (the
graphs the service runs, fed by the manifest's contract names), so that an exported model is
scored as it is served. Either way the model says which tasks it has, which data it was trained
on and what it held out of that data.

``Report`` is what every scoring returns: the figures of each task scored ("sample",
"complete", "draw_strokes"), each a ``TaskFigures`` that says how it prints and how it flattens
into a manifest's quality, beside the provenance they share.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latentforge.manifest import MANIFEST_NAME, Manifest
from latentforge.runtime import PLAIN, ModelRuntime
from trainer.quality.features import QualityError

DECIMALS = 6  # figures in reports and manifests


def round_figure(value: Any) -> Any:
    """A figure as reports and manifests keep it: a float (NumPy's too) to DECIMALS places as a
    Python float, anything else as it is."""
    return round(float(value), DECIMALS) if isinstance(value, (float, np.floating)) else value


def round_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """``round_figure`` over a flat dict of figures."""
    return {k: round_figure(v) for k, v in figures.items()}


# --- the model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSpec:
    """The training data of a model, as the trainer's `load_data` takes it."""

    spec: str
    image_size: int | None = None
    channels: int | None = None
    min_image_size: int = 8

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> DataSpec:
        spec = config.get("data")
        if not isinstance(spec, str) or not spec:
            raise QualityError(f"{where} does not name its training data; pass --data")
        return cls(spec, config.get("image_size"), config.get("channels"), int(config.get("min_image_size") or 8))

    def replaced(self, data: str | None) -> DataSpec:
        """This spec with another data set to compare with (its sizes kept); itself for None."""
        return self if data is None else DataSpec(data, self.image_size, self.channels, self.min_image_size)


def is_version_dir(path: Path) -> bool:
    """Whether a folder is an exported version (it holds a manifest)."""
    return (Path(path) / MANIFEST_NAME).is_file()


@dataclass
class ScoredModel:
    """A model to score: a run's checkpoint (``payload``, PyTorch) or an exported version
    (``runtime``, ONNX Runtime), with what every scorer needs to know about it."""

    target: str  # the path it was opened from
    source: dict[str, Any]  # provenance, as reports record it
    tasks: frozenset[str]  # what it can do (a manifest's tasks, or those its family declares)
    kind: str  # the family's kind (gan, vae, stroke_vae, ...)
    config: dict[str, Any]  # the training config (its data)
    hold_out: dict[str, Any] | None  # what the run held out of its data (trainer.loop.hold_out_data)
    where: str  # the file that says so, for messages
    runtime: ModelRuntime | None = None
    payload: dict[str, Any] | None = None
    _family: Any = field(default=None, repr=False)

    @property
    def is_version(self) -> bool:
        return self.runtime is not None

    @property
    def manifest(self) -> Manifest:
        if self.runtime is None:
            raise QualityError(f"{self.target} is a run, not an exported version")
        return self.runtime.manifest

    def family(self) -> Any:
        """The run's trained family on the CPU, restored once; the caller's random streams are
        left as they were (building a family seeds torch)."""
        if self.payload is None:
            raise QualityError(f"{self.target} is an exported version; it runs in ONNX Runtime, not PyTorch")
        if self._family is None:
            import torch

            from trainer.families import restore_family

            with torch.random.fork_rng(devices=[]):
                self._family = restore_family(self.payload)
        return self._family

    def data_spec(self, data: str | None = None) -> DataSpec:
        """The data to compare with: ``data`` when given, else the data the model was trained on."""
        return DataSpec.from_config(self.config, self.where).replaced(data)

    def graph_files(self, *tasks: str) -> list[str]:
        """The files of a version's graphs performing ``tasks`` (none for a run)."""
        if self.runtime is None:
            return []
        return [self.runtime.files[self.runtime.graph_for(task)] for task in tasks]


def open_scored(path: Path, checkpoint: Path | None = None) -> ScoredModel:
    """A run folder (its newest checkpoint, or ``checkpoint``), a checkpoint file or an exported
    version folder, opened to be scored."""
    path = Path(path)
    if is_version_dir(path):
        if checkpoint is not None:
            raise QualityError(f"{path} is an exported version; --checkpoint applies to run folders only")
        return open_version(path)
    if not path.exists():
        raise QualityError(f"{path} is neither a run folder, a checkpoint file nor an exported version folder")
    from trainer.checkpoint import load_checkpoint

    return open_run(load_checkpoint(Path(checkpoint) if checkpoint is not None else path), str(path))


def open_version(version_dir: Path) -> ScoredModel:
    """An exported version folder (its files' sha256 checked) in plain ONNX Runtime sessions."""
    runtime = ModelRuntime.open(Path(version_dir), PLAIN)
    manifest = runtime.manifest
    return ScoredModel(
        target=str(version_dir),
        source={"kind": "version", "model": manifest.name, "version": manifest.version,
                "step": int(manifest.source_checkpoint.get("step", 0)), "family": manifest.kind,
                "runtime": "onnxruntime"},
        tasks=frozenset(manifest.tasks), kind=manifest.kind, config=dict(manifest.training.get("config", {})),
        hold_out=manifest.training.get("hold_out"), where=str(Path(version_dir) / MANIFEST_NAME), runtime=runtime)


def open_run(payload: dict[str, Any], target: str | None = None) -> ScoredModel:
    """A loaded checkpoint (``trainer.checkpoint.load_checkpoint``), its family restored on first use."""
    from trainer.families import family_class

    cls = family_class(payload["family"])
    return ScoredModel(
        target=target or payload["path"],
        source={"kind": "run", "checkpoint": payload["path"], "step": int(payload["step"]),
                "family": payload["family"], "runtime": "torch"},
        tasks=frozenset(getattr(cls, "tasks", {})), kind=str(getattr(cls, "kind", payload["family"])),
        config=dict(payload["config"]), hold_out=payload.get("hold_out"), where=str(payload["path"]),
        payload=payload)


# --- the report -----------------------------------------------------------------------------------

class TaskFigures:
    """One task's figures in a report (a dataclass per task): how they print, and the flat record
    of the headline figures that a manifest's quality keeps."""

    task: ClassVar[str]

    def summary(self, report: Report) -> dict[str, Any]:
        raise NotImplementedError

    def format(self, report: Report) -> str:
        raise NotImplementedError


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Report:
    """One scoring of one model: each task's figures, keyed by task, and their provenance."""

    target: str  # the path scored
    source: dict[str, Any]  # ScoredModel.source
    n: int  # samples (drawings, images to complete) asked for
    seed: int
    tasks: dict[str, TaskFigures] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why
    created: str = field(default_factory=_now)

    @classmethod
    def of(cls, model: ScoredModel, n: int, seed: int) -> Report:
        return cls(target=model.target, source=dict(model.source), n=n, seed=seed)

    def add(self, figures: TaskFigures) -> TaskFigures:
        self.tasks[figures.task] = figures
        return figures

    def figures(self, task: str | None = None) -> Any:
        """The figures of ``task``, or of the report's only task."""
        if task is None:
            if len(self.tasks) != 1:
                raise QualityError(f"the report holds {len(self.tasks)} tasks ({', '.join(self.tasks)}); name one")
            return next(iter(self.tasks.values()))
        try:
            return self.tasks[task]
        except KeyError:
            raise QualityError(f"the report holds no {task!r} figures (it has {', '.join(self.tasks)})") from None

    def summary(self, task: str | None = None) -> dict[str, Any]:
        """A flat record of one task's headline figures (a manifest's quality)."""
        return self.figures(task).summary(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """The report as readable text: each task's table, then the notes."""
        return "\n".join(["\n\n".join(f.format(self) for f in self.tasks.values()),
                          *(f"note: {note}" for note in self.notes)])


def scored_report(path: Path, checkpoint: Path | None, n: int, seed: int,
                  score: Callable[[Report, ScoredModel], None]) -> Report:
    """Open the model at ``path`` (a run, a checkpoint or a version), let ``score`` add its
    tasks' figures to a new report, and time the whole: every ``evaluate_*`` entry point."""
    if n < 1:
        raise QualityError(f"--n must be >= 1 (got {n})")
    started = time.perf_counter()
    model = open_scored(Path(path), checkpoint)
    report = Report.of(model, n, seed)
    score(report, model)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
