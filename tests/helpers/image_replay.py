"""A container image replayed without a container engine, read from its Dockerfile.

What the entry-point tests need of an image is its files, its Python environment, its
environment variables and its commands, and all of them are in the Dockerfile. ``replay``
builds them under a folder that stands for the image's root filesystem:

- every ``COPY`` from the build context copies exactly the files it names (less what the
  image's ``.dockerignore`` drops), and ``COPY --from`` of an earlier stage's path is the same
  path here (all stages share the one folder, so a virtual environment keeps its absolute paths);
- ``RUN`` steps that make a virtual environment (``python -m venv``) or run pip
  (``pip install ...``, or a ``! pip show X`` guard that must fail) run for real, with the
  stage's ENV, ``python3.11`` from PATH and the pip cache kept (so a rerun is quick); system
  steps (apt-get, groupadd, chown) are not replayed, except the user's home (``useradd
  --home-dir``, created only with ``--create-home``, as the image has it) and ``mkdir``;
- the runtime environment is the base image's PATH, the user's HOME and the final stage's ENV,
  with container paths mapped onto this folder or onto the volumes the test mounts.

Not replayed: the user switch (the processes run as this machine's user) and the container's
network namespace (a test gives the server loopback and free ports, as ``docker run -e``
would). A HOME the image's user cannot create (``/nonexistent``) stays impossible to create,
even for root: it is mapped below a regular file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from tests.helpers.dockerfile import (
    Instruction,
    exec_form,
    expand,
    global_args,
    parse_dockerfile,
    useradd_home,
)

ROOT = Path(__file__).resolve().parents[2]
# PATH of the Debian-based python and CUDA base images, which ENV PATH=...:$PATH extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Variables of this process that would change what pip or Python do in the replayed image.
HOST_ONLY = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PIP_NO_CACHE_DIR")
# Build settings that are not the image's content: the pip cache is kept between replays.
NOT_REPLAYED_ENV = ("PIP_NO_CACHE_DIR",)


class ReplayError(AssertionError):
    """A Dockerfile step failed when replayed (its output is in the message)."""


@dataclass
class Image:
    """The replayed image: its root folder, mounted volumes, runtime environment and commands."""

    dockerfile: Path
    root: Path
    volumes: dict[str, Path]
    env: dict[str, str]  # as the container sees it (container paths)
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    home: str
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_start_period_s: float = 0.0
    declared_volumes: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)  # container paths the build wrote
    skipped: list[str] = field(default_factory=list)  # RUN steps not replayed

    def path(self, container_path: str) -> Path:
        """Where a container path lies on this machine (a volume, or below the image root)."""
        p = PurePosixPath(container_path)
        assert p.is_absolute(), container_path
        for mount, host in sorted(self.volumes.items(), key=lambda kv: -len(kv[0])):
            if p == PurePosixPath(mount) or PurePosixPath(mount) in p.parents:
                return host / p.relative_to(mount)
        if str(p) == self.home and self.home not in self.created:
            return _uncreatable(self.root) / p.relative_to("/")
        return self.root / p.relative_to("/")

    def _owned(self, container_path: str) -> bool:
        """Whether a container path belongs to the image or a volume (else it is the base system's)."""
        p = PurePosixPath(container_path)
        owned = [*self.created, *self.volumes, self.home]
        return any(p == PurePosixPath(o) or PurePosixPath(o) in p.parents for o in owned)

    def _map_value(self, key: str, value: str) -> str:
        parts = []
        for part in value.split(":"):
            if key == "PATH":
                # The image's own bin folders first, then the base system's (this machine's).
                if part.startswith("/") and (self._owned(part) or self.path(part).is_dir()):
                    parts.append(str(self.path(part)))
                parts.append(part)
            elif part.startswith("/") and self._owned(part):
                parts.append(str(self.path(part)))
            else:
                parts.append(part)
        return ":".join(parts)

    def environ(self, **overrides: str) -> dict[str, str]:
        """The environment of a process in the container (``docker run -e`` = ``overrides``), on
        this machine: container paths mapped, nothing inherited from this process."""
        env = {**self.env, **overrides}
        return {key: self._map_value(key, value) for key, value in env.items()}

    def command(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """``argv`` with its program found as the container would find it (PATH of ``env``)."""
        program = argv[0]
        if program.startswith("/"):
            found = str(self.path(program))
        else:
            found = shutil.which(program, path=env["PATH"])
            assert found, f"{program} is not on the image's PATH {env['PATH']}"
        return [found, *argv[1:]]

    def entry(self, args: Sequence[str] | None = None, **overrides: str) -> tuple[list[str], dict[str, str], Path]:
        """(argv, env, cwd) of ``docker run IMAGE [ARGS]``: ENTRYPOINT + (ARGS or CMD)."""
        env = self.environ(**overrides)
        argv = [*self.entrypoint, *(self._map_arg(a) for a in (self.cmd if args is None else args))]
        return self.command(argv, env), env, self.path(self.workdir)

    def _map_arg(self, arg: str) -> str:
        """A container path given as an argument (``/runs/x`` or ``--out=/runs/x``), mapped."""
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if value.startswith("/") and self._owned(value):
            return f"{flag}{eq}{self.path(value)}"
        return arg

    def health(self, *extra: str, **overrides: str) -> tuple[list[str], dict[str, str], Path]:
        """(argv, env, cwd) of the image's HEALTHCHECK command (script paths mapped)."""
        env = self.environ(**overrides)
        argv = [str(self.path(a)) if a.startswith("/") else a for a in self.healthcheck]
        return self.command([*argv, *extra], env), env, self.path(self.workdir)


def _uncreatable(root: Path) -> Path:
    """A regular file: no folder can be made below it, not even by root (a stand-in for a home
    such as /nonexistent that the image's unprivileged user cannot create)."""
    blocker = root / ".not-a-folder"
    if not blocker.exists():
        blocker.write_text("a home below this file cannot be created\n")
    return blocker


def _ignore_patterns(dockerfile: Path):
    """shutil.copytree ignore function from the image's ``**/NAME`` lines of its .dockerignore."""
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    names = []
    if ignore_file.exists():
        for line in ignore_file.read_text().splitlines():
            line = line.strip()
            if line.startswith("**/") and len(line) > 3:
                names.append(line[3:])
    return shutil.ignore_patterns(*names)


def _run(argv: list[str], *, cwd: Path, env: Mapping[str, str], what: str,
         expect_failure: bool = False) -> None:
    result = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=1800)
    failed = result.returncode != 0
    if failed != expect_failure:
        must = " (it must fail)" if expect_failure else ""
        raise ReplayError(f"{what}: `{shlex.join(argv)}` exited {result.returncode}{must}\n"
                          f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def replay(dockerfile: Path, root: Path, volumes: Mapping[str, Path] | None = None,
           python: str | None = None, context: Path = ROOT) -> Image:
    """Build ``dockerfile``'s image under ``root`` (see the module docstring) and describe it."""
    python = python or shutil.which("python3.11")
    if python is None:
        raise ReplayError("python3.11 is not on PATH")
    root.mkdir(parents=True, exist_ok=True)
    instructions = parse_dockerfile(dockerfile)
    image = Image(dockerfile=dockerfile, root=root, volumes={k: Path(v) for k, v in (volumes or {}).items()},
                  env={}, entrypoint=[], cmd=[], workdir="/", home="/root")
    ignore = _ignore_patterns(dockerfile)
    host_env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
    final = max(i.stage for i in instructions)
    arg_defaults = global_args(instructions)
    stage_args: dict[str, str] = {}
    stage_env: dict[str, str] = {}
    workdir = "/"

    for ins in instructions:
        if ins.stage < 0:
            continue
        if ins.keyword == "FROM":
            stage_args, stage_env, workdir = dict(arg_defaults), {"PATH": BASE_PATH}, "/"
            continue
        variables = {**stage_args, **stage_env}
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            stage_args[name] = expand(default.strip('"'), variables) if default else arg_defaults.get(name, "")
        elif ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                stage_env[key] = expand(value, {**stage_args, **stage_env})
        elif ins.keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / expand(ins.args, variables))
            image.created.add(workdir)
            image.path(workdir).mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            _copy(image, ins, workdir, context, ignore, variables)
        elif ins.keyword == "RUN":
            build_env = {**host_env, **{k: v for k, v in stage_env.items() if k not in NOT_REPLAYED_ENV and v}}
            build_env["PATH"] = host_env.get("PATH", BASE_PATH)
            _run_step(image, expand(ins.args, variables), workdir, build_env, python)
        elif ins.stage == final:
            if ins.keyword == "ENTRYPOINT":
                image.entrypoint = exec_form(ins.args)
            elif ins.keyword == "CMD":
                image.cmd = exec_form(ins.args)
            elif ins.keyword == "VOLUME":
                image.declared_volumes = exec_form(ins.args)
            elif ins.keyword == "HEALTHCHECK":
                options, _, command = ins.args.partition(" CMD ")
                image.healthcheck = exec_form(command)
                start = re.search(r"--start-period=(\d+)s", options)
                image.healthcheck_start_period_s = float(start.group(1)) if start else 0.0
        if ins.stage == final:
            image.workdir = workdir

    undeclared = set(image.volumes) - set(image.declared_volumes)
    assert not undeclared, f"{dockerfile.name} declares no VOLUME {sorted(undeclared)}"
    image.env = {"PATH": BASE_PATH, "HOME": image.home, **stage_env}
    return image


def _copy(image: Image, ins: Instruction, workdir: str, context: Path, ignore, variables: Mapping[str, str]) -> None:
    tokens = [expand(t, variables) for t in shlex.split(ins.args)]
    from_stage = next((t.split("=", 1)[1] for t in tokens if t.startswith("--from=")), None)
    tokens = [t for t in tokens if not t.startswith("--")]
    *sources, dest = tokens
    dest_path = str(PurePosixPath(workdir) / dest)
    into_folder = dest.endswith("/") or len(sources) > 1
    for src in sources:
        if from_stage is not None:
            origin = image.path(src)  # every stage shares the one root: the same path is already there
            if origin == image.path(dest_path):
                image.created.add(dest_path)
                continue
        else:
            origin = context / src
        assert origin.exists(), f"{image.dockerfile.name}: COPY {src}: no such file"
        if origin.is_dir():
            target = dest_path
            shutil.copytree(origin, image.path(target), ignore=ignore, dirs_exist_ok=True)
        else:
            target = str(PurePosixPath(dest_path) / origin.name) if into_folder else dest_path
            image.path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, image.path(target))
        image.created.add(target)


def _run_step(image: Image, args: str, workdir: str, build_env: Mapping[str, str], python: str) -> None:
    home, created = useradd_home(args)
    if home:
        image.home = home
        if created:
            image.created.add(home)
            image.path(home).mkdir(parents=True, exist_ok=True)
    for segment in (s.strip() for s in args.split("&&")):
        tokens = [t for t in shlex.split(segment) if not re.match(r"^\d*>", t)]  # drop redirections
        negate = bool(tokens) and tokens[0] == "!"
        tokens = tokens[1:] if negate else tokens
        if not tokens:
            continue
        program = PurePosixPath(tokens[0]).name
        if re.fullmatch(r"python[\d.]*", program) and tokens[1:3] == ["-m", "venv"]:
            venv = str(PurePosixPath(workdir) / tokens[3])
            image.created.add(venv)
            _run([python, "-m", "venv", str(image.path(venv))], cwd=image.path(workdir), env=build_env,
                 what=f"{image.dockerfile.name}: RUN {segment}")
        elif re.fullmatch(r"pip[\d.]*", program):
            argv = [str(image.path(tokens[0])) if tokens[0].startswith("/") else tokens[0], *tokens[1:]]
            _run(argv, cwd=image.path(workdir), env=build_env, what=f"{image.dockerfile.name}: RUN {segment}",
                 expect_failure=negate)
        elif program == "mkdir":
            for path in (t for t in tokens[1:] if t.startswith("/")):
                if not any(path == v or path.startswith(v.rstrip("/") + "/") for v in image.volumes):
                    image.created.add(path)
                    image.path(path).mkdir(parents=True, exist_ok=True)
        else:
            image.skipped.append(segment)
