"""Typed settings of a server, layered: command line > environment > file > defaults.

A settings class is a frozen dataclass whose fields are declared with ``setting(default, help)``;
``ServerSettings`` holds what every RPC server needs (ports, TLS, tokens, logs, drain) and a
service's settings extend it. From that one table come:

* ``load_settings``: defaults < a JSON or TOML file (keys are field names, at top level or under
  the class's ``FILE_TABLE``, e.g. ``[serve]``) < ``LATENTFORGE_<FIELD>`` environment variables <
  overrides (the command line), each value coerced to the field's type, then ``validate()``.
  The environment is read only here, once.
* ``add_flags`` / ``flag_overrides``: one command-line flag per field (``--field-name``;
  booleans also ``--no-field-name``; tuples repeat the flag), its help from the field.

Nothing here imports more than the standard library: the CLI builds its parser from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, TypeVar

ENV_PREFIX = "LATENTFORGE_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")

S = TypeVar("S", bound="ServerSettings")


class ConfigError(ValueError):
    """A setting has the wrong type or value; the message names it."""


def setting(default: Any, help: str, *, flag: str | None = "", choices: Sequence[str] | None = None,
            secret: bool = False) -> Any:
    """A settings field: its default and help text; ``flag`` spells its command-line flag
    (default ``--field-name``; None: none), ``choices`` limits a string, ``secret`` keeps the
    value out of repr and off the command line."""
    return dataclasses.field(default=default, repr=not secret, metadata={
        "help": help, "flag": None if secret else flag, "choices": choices})


@dataclass(frozen=True)
class ServerSettings:
    """What every RPC server of the project can be told."""

    FILE_TABLE: ClassVar[str | None] = None  # a file's table holding these settings, e.g. "serve"

    host: str = setting("127.0.0.1", "gRPC bind address; 0.0.0.0 or [::] to serve other hosts")
    port: int = setting(50051, "gRPC port; 0 picks a free one")
    reuse_port: bool = setting(False, "bind the gRPC port with SO_REUSEPORT (Linux), so several server processes "
                                      "share it and the kernel spreads connections over them; the port is then "
                                      "bound only once the services have started (models loaded)")
    metrics_host: str = setting("127.0.0.1", "Prometheus /metrics bind address")
    metrics_port: int | None = setting(9090, "Prometheus /metrics port; 0 picks a free one; none: no endpoint")
    # Transport security (all paths to PEM files): TLS with tls_cert + tls_key; mutual TLS when
    # tls_client_ca is set too (clients must present a certificate that CA signed).
    tls_cert: Path | None = setting(None, "PEM certificate: serve TLS (with --tls-key)")
    tls_key: Path | None = setting(None, "PEM private key of --tls-cert")
    tls_client_ca: Path | None = setting(None, "PEM CA: require client certificates it signed (mutual TLS)")
    # Bearer-token check on the services' calls (health and reflection stay open): tokens inline
    # (comma-separated in LATENTFORGE_AUTH_TOKENS) and/or one per line in a file.
    auth_tokens: tuple[str, ...] = setting((), "accepted bearer tokens", secret=True)
    auth_tokens_file: Path | None = setting(
        None, "require 'authorization: Bearer <token>' with one of these tokens (one per line)")
    max_message_bytes: int = setting(32 * 1024 * 1024, "gRPC send/receive message limit in bytes")
    # The HTTP/JSON surface (services.http): the same services on a port of its own, with the
    # same TLS, tokens, metrics and drain.
    http_port: int | None = setting(None, "HTTP/JSON port (routes under /v1/, Server-Sent Events for streams, "
                                          "/healthz, /readyz); 0 picks a free one; none: no HTTP surface")
    http_host: str | None = setting(None, "HTTP bind address (default: the gRPC --host)")
    http_max_body_bytes: int = setting(8 * 1024 * 1024, "largest JSON request body in bytes (413 above it; "
                                                        "bodies over 256 KiB are parsed on a thread, not on the "
                                                        "event loop); data set uploads have their own limit")
    playground: bool = setting(False, "serve the playground page at / of the HTTP port (needs --http-port)")
    access_log: bool = setting(True, "one log line per RPC (errors are logged either way); off saves CPU "
                                     "at high request rates")
    drain_grace_s: float = setting(5.0, "on SIGTERM: NOT_SERVING, refuse new calls, let calls in flight "
                                        "finish this long")
    event_loop: str = setting("auto", "the event loop the server runs on: uvloop (libuv; cheaper wake-ups from "
                                      "the batch workers, so less CPU per call), asyncio (the standard "
                                      "library's), or auto: uvloop, but asyncio for a server that runs training "
                                      "jobs (their processes crashed when started from uvloop)",
                              choices=EVENT_LOOPS)
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_json: bool = setting(True, "one JSON object per log line; off: plain text")

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message) pairs that types alone do not catch; subclasses add theirs."""
        return [
            (0 <= self.port <= 65535, "port must be 0..65535"),
            (self.metrics_port is None or 0 <= self.metrics_port <= 65535, "metrics_port must be 0..65535"),
            (self.log_level.upper() in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}"),
            (self.drain_grace_s >= 0, "drain_grace_s must be >= 0"),
            (self.http_port is None or 0 <= self.http_port <= 65535, "http_port must be 0..65535"),
            (self.http_max_body_bytes >= 1024, "http_max_body_bytes must be >= 1024"),
            (not self.playground or self.http_port is not None,
             "playground needs http_port (--http-port): the page is served by the HTTP surface"),
            ((self.tls_cert is None) == (self.tls_key is None), "tls_cert and tls_key must be given together"),
            (self.tls_client_ca is None or self.tls_cert is not None,
             "tls_client_ca (mutual TLS) needs tls_cert and tls_key"),
        ]

    def validate(self: S) -> S:
        """Raise ConfigError for the first failed check; returns self."""
        for ok, message in self.checks():
            if not ok:
                raise ConfigError(message)
        return self


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, hint: Any, value: Any) -> Any:
    """Coerce a file/env/CLI value to the field's annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return _convert(name, args[0], value)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("a boolean is not an integer")
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not an integer: {value!r}")
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if hint is Path:
            return Path(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: {exc}") from None
    raise ConfigError(f"setting {name!r} has an unsupported type {hint!r}")


def read_settings_file(path: Path, table: str | None = None) -> dict[str, Any]:
    """Settings from a .json or .toml file (top level, or ``table`` when the file has it)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object")
    if table and isinstance(data.get(table), dict):
        data = data[table]
    return data


def env_settings(cls: type[ServerSettings], environ: Mapping[str, str]) -> dict[str, str]:
    """``LATENTFORGE_<FIELD>`` variables that name a field of ``cls`` (others are ignored)."""
    names = {f.name for f in fields(cls)}
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in names:
                out[name] = value
    return out


def load_settings(cls: type[S], config_file: Path | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> S:
    """Merge defaults < file < environment < overrides (None values in overrides are unset).

    The file is ``config_file``, else the one ``LATENTFORGE_CONFIG`` names, if any.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    layers: list[Mapping[str, Any]] = []
    if config_file is not None:
        layers.append(read_settings_file(config_file, cls.FILE_TABLE))
    layers.append(env_settings(cls, environ))
    layers.append({k: v for k, v in (overrides or {}).items() if v is not None})
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}")
            merged[key] = _convert(key, hints[key], value)
    return dataclasses.replace(cls(), **merged).validate()


# ---- command-line flags from the same table -----------------------------------------------------

def _flagged(cls: type[ServerSettings], only: Sequence[str] | None) -> list[dataclasses.Field]:
    chosen = [f for f in fields(cls) if f.metadata.get("flag") is not None]
    if only is not None:
        unknown = set(only) - {f.name for f in chosen}
        if unknown:
            raise ValueError(f"no flag for settings {sorted(unknown)} of {cls.__name__}")
        chosen = [f for f in chosen if f.name in only]
    return chosen


def _help(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    if f.default not in (None, (), ""):
        shown = str(f.default).lower() if isinstance(f.default, bool) else f.default
        text += f" (default {shown})"
    return text.replace("%", "%%")


def add_flags(parser: argparse.ArgumentParser | Any, cls: type[ServerSettings],
              only: Sequence[str] | None = None) -> None:
    """One flag per field of ``cls`` (or the fields named in ``only``): ``--field-name VALUE``;
    a boolean ``--field-name/--no-field-name``; a tuple repeats its flag. Values are checked
    with the settings' own coercion; an absent flag leaves the setting to the lower layers."""
    hints = typing.get_type_hints(cls)
    for f in _flagged(cls, only):
        hint = hints[f.name]
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": _help(f)}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
            if typing.get_origin(hint) is tuple:
                kwargs["action"] = "append"
            else:
                kwargs["type"] = _flag_type(f.name, hint)
            if f.metadata["choices"] is not None:
                kwargs["choices"] = f.metadata["choices"]
                kwargs["metavar"] = None
        parser.add_argument(flag, **kwargs)


def _flag_type(name: str, hint: Any) -> Any:
    """Check a flag's text as the setting would (argparse reports a bad one); keep the text, so
    that ``none`` for an optional setting stays an explicit value for ``load_settings``."""
    def check(text: str) -> str:
        try:
            _convert(name, hint, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = name  # argparse names the type in its error messages
    return check


def flag_overrides(cls: type[ServerSettings], args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (flags added by ``add_flags``), for
    ``load_settings(overrides=...)``."""
    return {f.name: getattr(args, f.name) for f in _flagged(cls, None)
            if getattr(args, f.name, None) is not None}
