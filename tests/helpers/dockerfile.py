"""Dockerfiles read as data: instructions by stage, ARG defaults, ENV, exec-form lists.

The static image checks (tests/test_deploy_docker.py) and the image entry-point replay
(tests/helpers/image_replay.py) both read the Dockerfiles through this one parser, so what an
image copies, installs and runs is never repeated in a test.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to (-1: before the first FROM)


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment line inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, f"{path.name} ends inside a continued line"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage: the image that runs."""
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM lines may use)."""
    args = {}
    for i in instructions:
        if i.keyword == "FROM":
            break
        if i.keyword == "ARG" and "=" in i.args:
            name, _, value = i.args.partition("=")
            args[name] = value.strip('"')
    return args


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced from ``variables`` (unknown names become empty)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """ENV settings of the given instructions (the KEY=VALUE form), values as written."""
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for token in shlex.split(i.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def useradd_home(args: str) -> tuple[str | None, bool]:
    """(home, created) of the ``useradd`` in a RUN line: the user's HOME, and whether the image
    creates it (``--create-home``); (None, False) without one."""
    for segment in args.split("&&"):
        tokens = shlex.split(segment)
        if tokens and tokens[0] == "useradd":
            home = None
            for i, token in enumerate(tokens):
                if token in ("--home-dir", "-d") and i + 1 < len(tokens):
                    home = tokens[i + 1]
                elif token.startswith("--home-dir="):
                    home = token.split("=", 1)[1]
            return home, ("--create-home" in tokens or "-m" in tokens)
    return None, False


def exec_form(args: str) -> list[str]:
    """The JSON-array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, as a list."""
    return yaml.safe_load(args)
