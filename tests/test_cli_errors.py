"""Every CLI error is one line that says what to do, never a traceback: run through the installed
`latentforge` entry point, as a user runs it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _latentforge() -> list[str]:
    exe = shutil.which("latentforge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "latentforge"]


@pytest.mark.parametrize("args, status, says", [
    (["generate", "--target", "{closed}", "--model", "m"], 1, "UNAVAILABLE"),
    (["draw", "--target", "{closed}", "--model", "m"], 1, "is the server running at --target?"),
    (["models", "--target", "{closed}"], 1, "UNAVAILABLE"),
    (["complete", "--target", "{closed}", "--model", "m", "--image", "{tmp}/none.png", "--box", "0,0,1,1"], 2,
     "cannot read"),
    (["draw", "--target", "{closed}", "--model", "m", "--prefix", "{tmp}/bad.json"], 2, "is not JSON points"),
    (["export", "{tmp}/none", "--repo", "{tmp}/models", "--name", "x"], 2, "does not exist"),
    (["export", "{tmp}/bad.json", "--repo", "{tmp}/models", "--name", "x"], 2, "is not a readable checkpoint"),
    (["train", "--model", "dcgan", "--steps", "1"], 2, "--out (see latentforge train --help)"),
    (["generate", "--model", "m", "--count", "many"], 2, "invalid int value"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], status: int, says: str):
    (tmp_path / "bad.json").write_text("[[1, 2,")
    argv = [a.format(closed=_closed_port(), tmp=tmp_path) for a in args]
    done = subprocess.run([*_latentforge(), *argv], capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == status, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert says in err


def test_an_unexpected_error_is_one_line_that_says_how_to_see_where(monkeypatch, capsys):
    from latentforge import cli

    def broken(args):
        raise KeyError("boom")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), broken))
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "unexpected KeyError" in err and cli.TRACEBACK_ENV in err
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(KeyError):
        cli.main(["models"])


def _with_func(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:  # the sub-commands' parsers take the default too
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser
