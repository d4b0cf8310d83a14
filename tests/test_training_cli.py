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
from tests.helpers.training import TINY_JOB, cli_flags


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
                     "--watch", "--grid", str(grid), *cli_flags(options)])
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
    from services.training.client import TrainingClient

    with TrainingClient(target) as client:
        return "\n".join(e.log.text for e in client.watch(job_id) if e.WhichOneof("event") == "log")


def test_datasets_cli_upload_list_delete(tmp_path: Path, capsys):
    """`latentforge datasets upload FOLDER --name N | list | delete N` against a real server."""
    from tests.helpers.training import start_training_server

    folder = tmp_path / "colours"
    for name, colour in (("blue", (20, 20, 220)), ("red", (220, 20, 20))):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), tuple(c + i for c in colour)).save(folder / name / f"{i}.png")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("not an image")
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        target = ["--target", server.target]
        assert main(["datasets", "upload", *target, str(folder), "--name", "colours"]) == 0
        assert "data set colours: 6 examples of 3x64x64, classes blue, red" in capsys.readouterr().out
        assert main(["datasets", "list", *target]) == 0
        listed = capsys.readouterr().out
        assert "colours" in listed and "blue,red" in listed and "mnist5k" in listed
        assert main(["datasets", "upload", *target, str(notes), "--name", "notes"]) == 1
        assert "INVALID_ARGUMENT" in capsys.readouterr().err
        assert main(["datasets", "upload", *target, str(tmp_path / "nowhere"), "--name", "x"]) == 2
        assert main(["datasets", "upload", *target, str(notes / "a.txt"), "--name", "x"]) == 2
        assert "upload a folder" in capsys.readouterr().err
        assert main(["datasets", "delete", *target, "colours"]) == 0
        assert "deleted data set colours" in capsys.readouterr().out
        assert main(["datasets", "delete", *target, "colours"]) == 1
        assert "NOT_FOUND" in capsys.readouterr().err
    finally:
        server.stop()
