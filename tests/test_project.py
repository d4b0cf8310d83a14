"""Packaging promises: the serving install never pulls torch, and torch is pinned for installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_serving_extras_carry_no_training_stack():
    project = _pyproject()["project"]
    for extra in ("serve", "gpu"):
        names = _names(project["optional-dependencies"][extra]) | _names(project["dependencies"])
        assert not names & {"torch", "onnxscript", "mlxtend", "torchvision"}, extra
    assert "onnxruntime" in _names(project["optional-dependencies"]["serve"])
    gpu = _names(project["optional-dependencies"]["gpu"])
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu


def test_torch_is_pinned_for_installs():
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", pins, re.M)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme.split("## How it fits together")[0]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# Where ONNX Runtime sessions may be opened: the shared runtime (every graph of the service, the
# quality meter and the exporter runs through it), the peer servers of the serving benchmark (they
# run in another environment, without this package) and the tests.
SESSION_OWNERS = ("latentforge/runtime.py", "scripts/peers/", "tests/")
NOT_SOURCE = {"__pycache__", "build", "dist", "runs", "models", "out"}


def test_onnx_runtime_sessions_are_opened_by_the_runtime_only():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(part.startswith(".") or part in NOT_SOURCE or part.endswith(".egg-info") for part in rel.parts):
            continue
        if rel.as_posix().startswith(SESSION_OWNERS):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bInferenceSession\s*\(", line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, ("open ONNX Runtime sessions through latentforge.runtime (ModelRuntime, or "
                           "open_session for a bare file):\n" + "\n".join(offenders))
