"""Publishing a finished job: its best checkpoint, exported into the model repository.

The project's exporter (`latentforge export`, exporter/) runs in a process of its own, as the
training did, so the service never imports torch and an exporter crash never takes the service
down. Its parity gate applies: a graph that ONNX Runtime does not reproduce is not written,
and the job fails with the exporter's reason. The GenerationService picks the new version up
from the same folder while it runs.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from latentforge.manifest import Manifest
from services.training.runner import PROJECT_ROOT

_EXPORTED = re.compile(r"^exported (\S+) version (\d+) to ")


class PublishError(Exception):
    """The exporter refused the run; the message says why."""


@dataclass(frozen=True)
class Published:
    """The model version a job wrote, and the quality scores its manifest carries."""

    name: str
    version: int
    quality: dict[str, float]

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "quality": self.quality}


async def publish_run(python: str, run_dir: Path, repo: Path, name: str) -> Published:
    """Export ``run_dir`` (its best checkpoint when it has one) as the next version of ``name``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "latentforge", "export", str(run_dir), "--repo", str(repo), "--name", name,
        cwd=str(PROJECT_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if proc.returncode != 0:
        errors = [line[len("error:"):].strip() for line in stderr.splitlines() if line.startswith("error:")]
        tail = errors[-1] if errors else (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise PublishError(f"publishing failed: {tail}")
    for line in stdout.splitlines():
        match = _EXPORTED.match(line)
        if match:
            version = int(match.group(2))
            manifest = Manifest.read(Path(repo) / name / str(version))
            scores = manifest.quality.scores if manifest.quality is not None else {}
            quality = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
            return Published(name, version, quality)
    raise PublishError(f"publishing failed: the exporter did not say which version it wrote ({stdout.strip()!r})")
