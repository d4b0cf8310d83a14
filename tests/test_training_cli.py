"""The README's loop from the command line: `latentforge serve --training` in its own process,
`latentforge jobs submit --watch`, `jobs list|get`, then `latentforge generate` from the
published model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from latentforge.cli import main
from tests.helpers.processes import ServeProcess
from tests.helpers.training import TINY_JOB


def _flags(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


@pytest.mark.slow
def test_jobs_cli_submit_watch_list_get_and_generate(tmp_path: Path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    server = ServeProcess(models, "--training", "--data-dir", str(tmp_path / "data"), "--min-free-disk-bytes", "0",
                          "--poll-interval-s", "0.1")  # no periodic scan: a published version loads at once
    try:
        target = ["--target", server.target]
        options = {k: v for k, v in TINY_JOB.items() if k != "progress"}
        grid = tmp_path / "grid.png"
        code = main(["jobs", "submit", *target, "--family", "dcgan", "--model-name", "cli-dcgan", "--publish",
                     "--watch", "--grid", str(grid), *_flags(options)])
        out = capsys.readouterr().out
        job_id = out.splitlines()[0].split()[1]
        assert code == 0, out + _logs(server.target, job_id)
        assert "step 30/30" in out and "published cli-dcgan version 1" in out and "SUCCEEDED" in out
        assert Image.open(grid).size[0] > 28  # the newest sample grid

        assert main(["jobs", "list", *target]) == 0
        listed = capsys.readouterr().out
        assert job_id in listed and "SUCCEEDED" in listed and "cli-dcgan v1" in listed
        assert main(["jobs", "get", *target, job_id]) == 0
        job = json.loads(capsys.readouterr().out)
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["published"]["version"] == "1"
        assert main(["jobs", "cancel", *target, job_id]) == 1
        assert "FAILED_PRECONDITION" in capsys.readouterr().err

        samples = tmp_path / "samples.png"
        assert main(["generate", *target, "--model", "cli-dcgan", "--count", "4", "--seed", "1",
                     "--out", str(samples)]) == 0
        assert samples.is_file()
    finally:
        server.kill()
    assert not server.not_json, server.not_json[:3]  # the job processes' forks print nothing stray


def _logs(target: str, job_id: str) -> str:
    """The job's log lines, to show why it failed."""
    from services.training_client import TrainingClient

    with TrainingClient(target) as client:
        return "\n".join(e.log.text for e in client.watch(job_id) if e.WhichOneof("event") == "log")
