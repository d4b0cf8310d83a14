"""The bytes the GenerationService serves do not change when the serving code is reorganised.

tests/data/served_outputs.json holds sha256 hashes of what Generate, Complete and GenerateStrokes
served for fixed requests (seeds, counts, labels, truncation, PNG and TENSOR outputs, drawings'
points, SVG and PNG) on small models that build to the same graphs every time
(tests/helpers/recorded.py), recorded from the serving code as it was before a refactor. Here the
same models are built, `latentforge serve` of this tree is started on them as a child process and
the same calls (tests/helpers/record_outputs.py) must serve the same bytes: the same seed gives
the same images, tensors, latents and drawings before and after.

The models must build to the recorded graphs first: with other libraries or on another machine
they may not, and the test is skipped (it says why); in the recorded environment a difference
fails, as the trainer or the exporter changed. Re-record (only for an intended change of served
results, from the code that defines them):
    python -m tests.helpers.record_outputs tests/data/served_outputs.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers.processes import ROOT
from tests.helpers.record_outputs import environment, record, serving
from tests.helpers.recorded import build_in_child, graph_fingerprints

RECORDED_PATH = Path(__file__).parent / "data" / "served_outputs.json"
RECORDED: dict[str, Any] = json.loads(RECORDED_PATH.read_text())


def _differences(recorded: Any, served: Any, where: str = "") -> list[str]:
    """Where ``served`` differs from ``recorded``, as 'path: recorded X, served Y' lines."""
    if isinstance(recorded, dict) and isinstance(served, dict):
        return [line for key in sorted(set(recorded) | set(served))
                for line in _differences(recorded.get(key), served.get(key), f"{where}.{key}" if where else key)]
    if isinstance(recorded, list) and isinstance(served, list) and len(recorded) == len(served):
        return [line for i, (r, s) in enumerate(zip(recorded, served)) for line in _differences(r, s, f"{where}[{i}]")]
    return [] if recorded == served else [f"{where}: recorded {recorded!r}, served {served!r}"]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[dict[str, dict[str, Any]]]:
    """The recorded calls made on freshly built models served by this tree's `latentforge serve`."""
    repo = tmp_path_factory.mktemp("recorded-models")
    build_in_child(repo, ROOT)
    built, here = graph_fingerprints(repo), environment()
    if built != RECORDED["model_graphs"]:
        changed = _differences(RECORDED["model_graphs"], built)
        if here != RECORDED["environment"]:
            pytest.skip(f"the recorded models build to other graphs with these libraries or on this machine "
                        f"({_differences(RECORDED['environment'], here)}), so the recorded outputs do not apply: "
                        f"{changed}")
        pytest.fail(f"the recorded models build to other graphs in the environment they were recorded in: the "
                    f"trainer or the exporter changed what they write ({changed}); the served outputs cannot be "
                    f"compared until the models build as recorded")
    with serving(repo) as channel:
        yield record(channel)


def test_the_same_calls_are_recorded_and_made(served):
    """Every recorded call is made, and no call goes unrecorded."""
    assert sorted(served) == sorted(RECORDED["calls"]), (
        "the calls of tests/helpers/record_outputs.py differ from those recorded: re-record from the code "
        "before the change")


@pytest.mark.parametrize("name", sorted(RECORDED["calls"]))
def test_served_bytes_are_the_recorded_ones(served, name: str):
    """The call ``name`` serves the recorded bytes (images, tensors, latents, drawings), seed for seed."""
    recorded = RECORDED["calls"][name]
    assert name in served, f"{name} was recorded but not called"
    assert served[name]["request"] == recorded["request"], f"{name}: the request differs from the recorded one"
    differences = _differences(recorded["served"], served[name]["served"])
    note = "" if environment() == RECORDED["environment"] else (
        f" (recorded with another environment: {_differences(RECORDED['environment'], environment())})")
    assert not differences, (f"{name} served other bytes than recorded{note}; request "
                             f"{json.dumps(recorded['request'], sort_keys=True)}:\n" + "\n".join(differences))
