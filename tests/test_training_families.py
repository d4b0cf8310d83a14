"""Every family the trainer registers can be submitted as a job: through the Python client and
through `latentforge jobs submit`, whose --family choices and option flags come from the proto's
option messages (services.training.families), on an install with or without the trainer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latentforge.cli import build_parser, main
from services.training.families import FAMILY_FIELDS, FAMILY_MESSAGES, option_fields
from tests.helpers.training import cli_flags, family_dataset, family_job_options, start_training_server
from trainer.families import FAMILIES

ROOT = Path(__file__).resolve().parent.parent


def _submit_help() -> str:
    jobs = build_parser()._subparsers._group_actions[0].choices["jobs"]
    return jobs._subparsers._group_actions[0].choices["submit"].format_help()


def test_jobs_submit_help_lists_every_family_and_its_option_flags():
    text = _submit_help()
    assert "{" + ",".join(FAMILIES) + "}" in text
    squeezed = "".join(text.split())  # argparse wraps lines, at hyphens too
    for family, entry in FAMILIES.items():
        assert "".join(entry.summary.split()) in squeezed, family  # the registry's words, from the trainer
        for name in option_fields(FAMILY_MESSAGES[family]):
            assert f"--{name.replace('_', '-')} " in text, (family, name)
    # One flag per name, which says whose it is and the trainer's description with each default.
    flat = " ".join(text.split())
    assert ("--latent-dim LATENT_DIM [dcgan, vae, ae, completion, sketch-rnn] size of the latent vector z (default: "
            "dcgan 100, vae 32") in flat
    assert "--enc-rnn ENC_RNN [sketch-rnn] hidden size" in flat
    assert "--gan-loss GAN_LOSS [dcgan, completion] GAN objective" in flat


@pytest.mark.parametrize("argv, words", [
    (["--family", "vae", "--gan-loss", "hinge"], "--gan-loss: not an option of vae (--gan-loss: dcgan, completion)"),
    (["--family", "sketch-rnn", "--width", "8", "--denoise-std", "0.1"],
     "--width, --denoise-std: not options of sketch-rnn (--width: dcgan, vae, ae, completion, adain, style; "
     "--denoise-std: ae)"),
])
def test_a_flag_the_chosen_family_lacks_is_refused_in_one_line(argv, words, capsys):
    # Refused before any connection: the target is never dialled.
    assert main(["jobs", "submit", "--target", "127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {words}") and err.count("\n") == 1, err


def test_an_unknown_family_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["jobs", "submit", "--family", "gan"])
    assert exit_.value.code == 2 and "invalid choice: 'gan'" in capsys.readouterr().err


def test_the_client_and_the_cli_need_neither_the_trainer_nor_torch():
    """As on the serving image (no trainer/ package, no torch): the tables come from the proto,
    every family and flag is there, and only the help is shorter."""
    code = (
        "import sys\n"
        "class NoTrainer:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'trainer' or name.startswith('trainer.') or name == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTrainer())\n"
        "from services.training.client import job_spec\n"
        "from services.training.cli import register\n"
        "import argparse\n"
        "parser = argparse.ArgumentParser(prog='latentforge')\n"
        "register(parser.add_subparsers())\n"
        "spec = job_spec('sketch-rnn', 'kanjivg:digits', steps=3, enc_rnn=16)\n"
        "print(spec.WhichOneof('family_options'), spec.sketch_rnn.enc_rnn, spec.options.steps)\n"
        "args = parser.parse_args(['jobs', 'submit', '--family', 'completion', '--z-inject', 'film'])\n"
        "print(args.family, args.fam_z_inject)\n"
        "print(sorted(m for m in ('trainer', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["sketch_rnn 16 3", "completion film", "[]"]


@pytest.mark.slow
def test_list_families_describes_every_family_and_option_as_the_trainer_declares_them(tmp_path: Path):
    """ListFamilies (gRPC and GET /v1/families): every family of the registry with its data kind,
    every field of the options messages with its type, and the trainer's defaults and help."""
    import httpx
    from google.protobuf import json_format

    from services.training.client import TrainingClient
    from services.training.families import COMMON_MESSAGE
    from trainer.config import TrainConfig
    from trainer.options import options_of

    server = start_training_server(tmp_path / "data", tmp_path / "models", http_port=0)
    try:
        with TrainingClient(server.target) as client:
            listed = client.families()
        assert [f.name for f in listed.families] == list(FAMILY_MESSAGES) and set(FAMILY_MESSAGES) == set(FAMILIES)
        assert [o.name for o in listed.common] == list(option_fields(COMMON_MESSAGE))
        trainer = {o.name: o for o in options_of(TrainConfig)}
        steps = next(o for o in listed.common if o.name == "steps")
        assert steps.type == "int" and steps.default_value == str(trainer["steps"].default) and steps.help
        for family in listed.families:
            entry = FAMILIES[family.name]
            assert family.data == entry.data and family.summary == entry.summary
            assert list(family.data_kinds) == list(entry.data_kinds)
            assert family.options_field == FAMILY_FIELDS[family.name]
            assert [o.name for o in family.options] == list(option_fields(FAMILY_MESSAGES[family.name]))
            declared = {o.name: o for o in options_of(entry.config)}
            for option in family.options:
                assert option.help == declared[option.name].help, (family.name, option.name)
                if declared[option.name].choices:
                    assert list(option.choices) == [str(c) for c in declared[option.name].choices]
        gan = next(f for f in listed.families if f.name == "dcgan")
        assert next(o for o in gan.options if o.name == "gan_loss").choices  # a fixed set of values
        over_http = httpx.get(f"http://127.0.0.1:{server.server.http_port}/v1/families", timeout=30)
        assert over_http.status_code == 200 and over_http.json() == json_format.MessageToDict(listed)
    finally:
        server.stop()


def test_every_family_trains_as_a_job_from_the_python_client(tmp_path: Path):
    """A short job of each registered family, on the data it trains on, submitted with
    ``job_spec`` by name; GetJob shows the options in the family's own message."""
    from services.training.client import TrainingClient, job_spec, state_name

    server = start_training_server(tmp_path / "data", tmp_path / "models", max_concurrent_jobs=2)
    try:
        with TrainingClient(server.target) as client:
            jobs = {family: client.submit(job_spec(family, family_dataset(family), **family_job_options(family)))
                    for family in FAMILIES}
            for family, job in jobs.items():
                done = client.wait(job.job_id, timeout_s=120)
                logs = [e.log.text for e in client.watch(job.job_id) if e.WhichOneof("event") == "log"]
                assert state_name(done.state) == "SUCCEEDED", (family, done.reason, logs[-5:])
                assert done.step == done.total_steps == 4
                assert done.spec.family == family and done.spec.WhichOneof("family_options") == FAMILY_FIELDS[family]
                sent = family_job_options(family)
                own = getattr(done.spec, FAMILY_FIELDS[family])
                assert {f.name: v for f, v in own.ListFields()} == {
                    k: v for k, v in sent.items() if k in option_fields(FAMILY_MESSAGES[family])}
    finally:
        server.stop()


@pytest.mark.slow
def test_every_family_from_the_cli_against_serve_training_and_the_new_families_published(tmp_path: Path, capsys):
    """`latentforge jobs submit` of each family against `latentforge serve --training`: the
    completion and sketch-rnn jobs publish, are watched to the end and served. The other
    families' jobs wait behind them and are cancelled once the server has shown that the CLI
    submitted exactly the spec the Python client builds (whose jobs of every family train, above)."""
    from google.protobuf import json_format

    from services.training.client import job_spec
    from tests.helpers.processes import ServeProcess

    models = tmp_path / "models"
    models.mkdir()
    server = ServeProcess(models, "--training", "--data-dir", str(tmp_path / "data"), "--min-free-disk-bytes", "0",
                          "--poll-interval-s", "0.1", "--max-concurrent-jobs", "2")
    published = {"completion": "cli-completion", "sketch-rnn": "cli-sketch"}
    try:
        target = ["--target", server.target]
        jobs = {}
        for family in sorted(FAMILIES, key=lambda f: f not in published):  # the two that run go first
            publish = ["--publish", "--model-name", published[family]] if family in published else []
            code = main(["jobs", "submit", *target, "--family", family, "--dataset", family_dataset(family), *publish,
                         *cli_flags(family_job_options(family))])
            out = capsys.readouterr().out
            assert code == 0, out
            jobs[family] = out.split()[1]
            assert main(["jobs", "get", *target, jobs[family]]) == 0
            shown = json.loads(capsys.readouterr().out)["spec"]
            client_spec = job_spec(family, family_dataset(family), model_name=published.get(family, ""),
                                   publish=family in published, **family_job_options(family))
            assert shown == json_format.MessageToDict(client_spec, preserving_proto_field_name=True), family
            if family not in published:
                assert main(["jobs", "cancel", *target, jobs[family]]) == 0
                capsys.readouterr()
        for family, model in published.items():
            grid = tmp_path / f"{family}.png"
            code = main(["jobs", "watch", *target, jobs[family], "--grid", str(grid), "--logs"])
            out = capsys.readouterr().out
            assert code == 0 and "SUCCEEDED" in out and "step 4/4" in out, (family, out[-3000:])
            assert f"published {model} version 1" in out and grid.is_file(), out[-3000:]
        assert main(["models", *target, "--json"]) == 0
        listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
        assert listed["cli-completion"]["kind"] == "completion" and listed["cli-sketch"]["kind"] == "stroke_vae"
    finally:
        server.kill()
    assert not server.not_json, server.not_json[:3]
